"""Identity assignment per track: one-to-one between concurrent tracks and identities, with hysteresis.

After every frame, the *active* tracks (seen within ``active_gap`` frames of their camera's
latest frame) that have an aggregate embedding are assigned to gallery identities by one
Hungarian assignment (scipy's ``linear_sum_assignment``) that maximises the summed cosine:

- one-to-one: two concurrent tracks never hold the same identity. ``scope="all"`` (default)
  solves one problem over every camera (cameras that do not see the same place: a person is in
  one camera at a time); ``scope="camera"`` one per camera (overlapping views).
- hysteresis: a track's current identity gets ``stickiness`` added to its score, and a track
  changes to another identity only after that identity won ``switch_after`` assignments in a
  row, unless another track took its identity (then it changes at once: one-to-one first).
- open set: each track also has a private "unknown" column scored ``threshold`` (the gallery's
  open-set threshold), so a track whose best free identity scores below it stays unknown; with
  ``new_identities`` an unknown track with ``min_observations`` crops and ``min_quality`` weight
  becomes a new identity, enrolled from (and refined by) its aggregate. A track that had an
  identity keeps it rather than falling back to unknown.
- memory: a track that stops being active adds its aggregate to its identity (with
  ``memory_observations`` crops; with ``memory_margin``, only if that identity beat every other
  by the margin, so a look-alike's track does not teach an identity the look-alike's appearance).

Tracks are duck-typed: ``camera_id``, ``last_frame``, ``identity``, ``owns_identity``, ``score``,
``observations``, ``weight_sum``, ``aggregate()`` and a ``pending`` dict (see pipeline.TrackState).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from edge_reid.errors import InvalidInputError

SCOPES = ("all", "camera")
#: the assignment's tuned defaults (StreamConfig takes the same): bonus of a track's current identity,
#: assignments in a row another identity must win, embedded crops and summed quality before an unmatched
#: track becomes a new identity. 0.2 and 20 were chosen on 16 replayed scenes (README, camera streams).
STICKINESS, SWITCH_AFTER, MIN_OBSERVATIONS, MIN_QUALITY = 0.2, 3, 20, 1.0


def assign_one_to_one(scores: np.ndarray, unknown: Sequence[float]) -> List[Optional[int]]:
    """Column per row maximising the summed score, each column at most once; a row whose best
    free column scores below its ``unknown`` value gets None."""
    from scipy.optimize import linear_sum_assignment

    n, m = scores.shape
    if n == 0:
        return []
    big = np.full((n, m + n), -1e6, np.float64)
    big[:, :m] = np.where(np.isfinite(scores), scores, -1e6)
    big[np.arange(n), m + np.arange(n)] = np.asarray(unknown, np.float64)
    rows, cols = linear_sum_assignment(big, maximize=True)
    out: List[Optional[int]] = [None] * n
    for r, c in zip(rows, cols):
        out[r] = int(c) if c < m and big[r, c] > -1e5 else None
    return out


class IdentityAssigner:
    """Assigns gallery identities to live tracks (see the module docstring)."""

    def __init__(self, gallery: Any, scope: str = "all", stickiness: float = STICKINESS,
                 switch_after: int = SWITCH_AFTER, active_gap: int = 2, min_observations: int = MIN_OBSERVATIONS,
                 min_quality: float = MIN_QUALITY,
                 new_identities: bool = True, assign_after: int = 1, memory_observations: int = 0,
                 centring: Optional[Any] = None, memory_margin: float = 0.0) -> None:
        if scope not in SCOPES:
            raise InvalidInputError(f"Unknown identity scope '{scope}'; choose {' or '.join(SCOPES)}.")
        self.gallery, self.scope, self.stickiness = gallery, scope, float(stickiness)
        self.switch_after, self.active_gap = max(1, int(switch_after)), int(active_gap)
        self.min_observations, self.min_quality = int(min_observations), float(min_quality)
        self.new_identities, self.assign_after = bool(new_identities), max(1, int(assign_after))
        self.memory_observations = int(memory_observations)
        self.memory_margin = float(memory_margin)
        self.centring = centring  # a domain.CameraCentring: tracks are matched minus their camera's mean
        self.latest: Dict[str, int] = {}
        self._was_active: Dict[int, Any] = {}
        self.switches = 0

    def active(self, tracks: Iterable[Any]) -> List[Any]:
        """Tracks seen within ``active_gap`` frames of their camera's latest frame, with an aggregate."""
        return [t for t in tracks if t.vector_sum is not None
                and self.latest.get(t.camera_id, t.last_frame) - t.last_frame <= self.active_gap]

    def update(self, camera_id: str, frame_index: int, tracks: Iterable[Any]) -> None:
        """Re-assign after ``camera_id``'s frame ``frame_index``: every active track in scope."""
        self.latest[camera_id] = max(frame_index, self.latest.get(camera_id, frame_index))
        live = self.active(tracks)
        if self.memory_observations > 0:
            self._remember(camera_id, live)
        if self.scope == "camera":
            live = [t for t in live if t.camera_id == camera_id]
        if not live:
            return
        self._solve(live)

    def vector(self, t: Any) -> np.ndarray:
        """The vector ``t`` is matched (and remembered) by: its aggregate, minus its camera's mean
        embedding with camera centring."""
        v = t.aggregate()
        return v if self.centring is None else self.centring.centre(t.camera_id, v)

    def _solve(self, live: List[Any]) -> None:
        ids, sims = self.gallery.scores(np.stack([self.vector(t) for t in live]), use_index=False)
        sims = sims.astype(np.float64)
        column = {int(i): k for k, i in enumerate(ids)}
        owners = {t.identity: t for t in live if t.owns_identity and t.identity is not None}
        for r, t in enumerate(live):
            if t.identity in column:
                sims[r, column[t.identity]] += self.stickiness
            for ident, owner in owners.items():  # an identity created from a live track is that track's
                if ident in column:
                    sims[r, column[ident]] = 1.0 + self.stickiness if owner is t else -np.inf
        choice = assign_one_to_one(sims, [self.gallery.threshold] * len(live))
        proposals = [int(ids[c]) if c is not None else None for c in choice]
        for r, (t, c) in enumerate(zip(live, choice)):
            t.score = float(sims[r, c]) - (self.stickiness if proposals[r] == t.identity else 0.0) \
                if c is not None else (float(np.max(sims[r])) if sims.shape[1] else 0.0)
        held = [self._hysteresis(t, p) for t, p in zip(live, proposals)]
        forced = True
        while forced:  # one-to-one first: a track holding an identity another track was given yields it
            forced = False
            for r, t in enumerate(live):
                if held[r] is not None and held[r] != proposals[r] and any(
                        held[k] == held[r] for k in range(len(live)) if k != r):
                    held[r], forced = proposals[r], True
        for t, p, h in zip(live, proposals, held):
            if h != t.identity:
                self.switches += int(t.identity is not None)
                t.identity, t.pending = h, {}
            if t.identity is None and p is None and self._may_create(t):
                ident = self.gallery.add_identity(self.vector(t), source=f"track:{t.camera_id}/{t.track_id}")
                t.identity, t.owns_identity, t.score = ident.id, True, 1.0

    def _hysteresis(self, t: Any, proposal: Optional[int]) -> Optional[int]:
        """The identity ``t`` holds after this assignment, before one-to-one conflicts are resolved."""
        if proposal == t.identity or t.owns_identity:
            t.pending = {}
            return t.identity
        if t.identity is None:
            return proposal if t.observations >= self.assign_after else None
        if proposal is None:
            t.pending = {}
            return t.identity  # never falls back to unknown on its own
        count = t.pending.get(proposal, 0) + 1
        t.pending = {proposal: count}
        return proposal if count >= self.switch_after else t.identity

    def _remember(self, camera_id: str, live: List[Any]) -> None:
        """A track of ``camera_id`` that stopped being active adds its aggregate to its identity."""
        now = {id(t): t for t in live}
        for key, t in list(self._was_active.items()):
            if key in now or t.camera_id != camera_id:
                continue
            del self._was_active[key]
            if t.identity is not None and not t.owns_identity and t.observations >= self.memory_observations \
                    and t.identity in self.gallery.identities and self._unambiguous(t):
                self.gallery.add_embeddings(t.identity, self.vector(t))
        self._was_active.update(now)

    def _unambiguous(self, t: Any) -> bool:
        """``t``'s identity beats every other identity by ``memory_margin`` (so a look-alike's
        track does not teach its identity the look-alike's appearance)."""
        if self.memory_margin <= 0:
            return True
        ids, sims = self.gallery.scores(self.vector(t)[None], use_index=False)
        own = ids == t.identity
        if not own.any() or own.all():
            return True
        return float(sims[0][own].max() - sims[0][~own].max()) >= self.memory_margin

    def _may_create(self, t: Any) -> bool:
        return (self.new_identities and t.observations >= self.min_observations
                and t.weight_sum >= self.min_quality)

