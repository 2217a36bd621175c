"""Tracking and identity logic of the stream, on hand-made detections and embeddings:

- the appearance tracker does not carry a track on to a different-looking person who takes
  the same box (ByteTrack, boxes only, does), and finds a person again after a brief occlusion;
- identity assignment is per track with hysteresis (a brief look-alike run does not switch it,
  sustained evidence does), one-to-one between concurrent tracks (Hungarian, across cameras
  unless the scope is per camera), and the open-set threshold comes from the enrolment images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
import pytest

from edge_reid.metadata import ModelMeta
from edge_reid.stream.calibration import open_set_threshold
from edge_reid.stream.detectors.base import Detections
from edge_reid.stream.gallery import Gallery
from edge_reid.stream.identities import IdentityAssigner, assign_one_to_one
from edge_reid.stream.reid_tracker import AppearanceTracker

DIM = 8


def _unit(*values: float) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[:len(values)] = values
    return v / np.linalg.norm(v)


A, B, C = _unit(1), _unit(0, 1), _unit(0, 0, 1)


def _box(x: float, y: float = 100.0, w: float = 40.0, h: float = 120.0) -> list:
    return [x, y, x + w, y + h]


def _dets(*boxes: list) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32))


def _ids(pairs) -> Dict[int, int]:
    """detection index -> track id"""
    return {d: t for t, d in pairs}


# ----------------------------------------------------------------------------- tracker


def test_a_different_looking_person_in_the_same_box_gets_a_new_track():
    tracker = AppearanceTracker(fps=10)
    ids = []
    for t in range(16):
        who = A if t < 8 else B  # the same walk, another person from frame 8 on
        ids.append(_ids(tracker.update(_dets(_box(100 + 5 * t)), [who])).get(0))
    before, after = set(ids[2:8]), {i for i in ids[10:] if i is not None}
    assert len(before) == 1 and len(after) == 1 and before != after, ids


def test_a_person_walking_in_alone_is_reported_from_the_first_frame_a_found_again_one_is_not():
    tracker = AppearanceTracker(fps=10)
    assert _ids(tracker.update(_dets(_box(100)), [A])).get(0) is not None
    for t in range(1, 6):
        tracker.update(_dets(_box(100 + 5 * t)), [A])
    # A vanishes; next to where it was lost someone different appears: tentative, not reported yet
    assert _ids(tracker.update(_dets(_box(132)), [B])).get(0) is None
    assert _ids(tracker.update(_dets(_box(134)), [B])).get(0) is not None


def test_bytetrack_carries_the_track_on_to_the_other_person():
    """The reference behaviour the appearance tracker fixes (boxes only: one id for both)."""
    pytest.importorskip("trackers")
    from edge_reid.stream.tracker import CameraTracker

    tracker = CameraTracker(fps=10)
    ids = [_ids(tracker.update(_dets(_box(100 + 5 * t)))).get(0) for t in range(16)]
    assert len({i for i in ids[2:] if i is not None}) == 1


def test_a_person_hidden_for_a_few_frames_keeps_the_track():
    tracker = AppearanceTracker(fps=10)
    ids = []
    for t in range(24):
        hidden = 8 <= t < 14  # behind a pillar: no detection for 6 frames, walking on
        boxes = [] if hidden else [_box(100 + 8 * t)]
        pairs = tracker.update(_dets(*boxes), [A] if boxes else [])
        ids.append(_ids(pairs).get(0))
    seen = {i for i in ids if i is not None}
    assert len(seen) == 1, ids
    assert all(ids[t] is not None for t in range(14, 24))


def test_two_people_who_meet_and_turn_back_keep_their_tracks_by_appearance():
    """A and B walk towards each other, meet, and each walks back: motion alone predicts a crossing."""
    tracker = AppearanceTracker(fps=10)
    first = None
    for t in range(20):
        xa, xb = (100 + 10 * t, 300 - 10 * t) if t < 10 else (190 - 10 * (t - 9), 210 + 10 * (t - 9))
        ids = _ids(tracker.update(_dets(_box(xa), _box(xb)), [A, B]))
        if t == 5:
            first = (ids[0], ids[1])
        if t >= 12:
            assert (ids.get(0), ids.get(1)) == first, (t, ids, first)


# ----------------------------------------------------------------------------- identities


@dataclass
class _Track:
    camera_id: str
    track_id: int
    last_frame: int = 0
    identity: Optional[int] = None
    owns_identity: bool = False
    score: float = 0.0
    observations: int = 0
    weight_sum: float = 0.0
    vector_sum: Optional[np.ndarray] = None
    pending: Dict[int, int] = field(default_factory=dict)

    def see(self, embedding: np.ndarray, frame: int) -> None:
        self.vector_sum = embedding.astype(np.float64) if self.vector_sum is None else self.vector_sum + embedding
        self.observations += 1
        self.weight_sum += 1.0
        self.last_frame = frame

    def set(self, embedding: np.ndarray, frame: int) -> None:
        """Make the aggregate exactly ``embedding`` (what a long run of such crops leads to)."""
        self.vector_sum, self.weight_sum = embedding.astype(np.float64), 1.0
        self.observations = max(self.observations, 8)
        self.last_frame = frame

    def aggregate(self) -> Optional[np.ndarray]:
        if self.vector_sum is None:
            return None
        return (self.vector_sum / np.linalg.norm(self.vector_sum)).astype(np.float32)


def _gallery(*people: np.ndarray, threshold: float = 0.3) -> Gallery:
    gallery = Gallery(ModelMeta(model="test", input_size=(32, 16), embedding_dim=DIM, num_ids=0, dataset="t"),
                      threshold=threshold, use_faiss=False)
    for k, emb in enumerate(people):
        gallery.add_identity(emb[None], name=f"p{k + 1}")
    return gallery


def test_identity_switches_only_on_sustained_evidence():
    gallery = _gallery(A, B)
    assigner = IdentityAssigner(gallery, switch_after=3, new_identities=False)
    track = _Track("cam1", 0)
    track.set(A, 0)
    assigner.update("cam1", 0, [track])
    assert track.identity == 1
    for frame in (1, 2):  # two frames whose aggregate looks like B: not enough
        track.set(_unit(0.3, 1), frame)
        assigner.update("cam1", frame, [track])
        assert track.identity == 1
    track.set(A, 3)
    assigner.update("cam1", 3, [track])
    for frame in (4, 5, 6):  # sustained: switches on the third
        track.set(_unit(0.3, 1), frame)
        assigner.update("cam1", frame, [track])
    assert track.identity == 2 and assigner.switches == 1


def test_concurrent_tracks_get_different_identities():
    """Both tracks look most like p1; the one that looks more like p1 gets it, the other its next best."""
    gallery = _gallery(A, B)
    assigner = IdentityAssigner(gallery, new_identities=False)
    t1, t2 = _Track("cam1", 0), _Track("cam1", 1)
    t1.set(_unit(1, 0.5), 0)   # p1 0.89, p2 0.45
    t2.set(_unit(1, 0.8), 0)   # p1 0.78, p2 0.62
    assigner.update("cam1", 0, [t1, t2])
    assert (t1.identity, t2.identity) == (1, 2)


@pytest.mark.parametrize("scope, expected", [("all", {1, 2}), ("camera", {1})])
def test_one_identity_per_person_across_cameras_unless_views_overlap(scope, expected):
    gallery = _gallery(A, B)
    assigner = IdentityAssigner(gallery, scope=scope, new_identities=False)
    t1, t2 = _Track("cam1", 0), _Track("cam2", 0)
    t1.set(_unit(1, 0.3), 0)
    t2.set(_unit(1, 0.6), 0)
    assigner.update("cam1", 0, [t1, t2])
    assigner.update("cam2", 0, [t1, t2])
    assert {t1.identity, t2.identity} == expected and t1.identity == 1


def test_an_identity_freed_by_an_ended_track_can_be_taken():
    gallery = _gallery(A, B)
    assigner = IdentityAssigner(gallery, new_identities=False, active_gap=2, stickiness=0.05)  # p1 wins by 0.07
    t1, t2 = _Track("cam1", 0), _Track("cam1", 1)
    t1.set(A, 0)
    t2.set(_unit(1, 0.9), 0)
    assigner.update("cam1", 0, [t1, t2])
    assert (t1.identity, t2.identity) == (1, 2)
    for frame in range(1, 8):  # t1 has left; t2 keeps looking like p1 more than p2
        t2.set(_unit(1, 0.9), frame)
        assigner.update("cam1", frame, [t1, t2])
    assert t2.identity == 1


def test_unmatched_track_becomes_a_new_identity_and_keeps_it():
    gallery = _gallery(A, B, threshold=0.5)
    assigner = IdentityAssigner(gallery, min_observations=3, min_quality=0.5)
    track = _Track("cam1", 0)
    for frame in range(3):
        track.see(C, frame)
        assigner.update("cam1", frame, [track])
    assert track.identity == 3 and track.owns_identity and len(gallery) == 3


def test_assign_one_to_one_respects_the_unknown_column():
    scores = np.array([[0.9, 0.2], [0.8, 0.25]])
    assert assign_one_to_one(scores, [0.3, 0.3]) == [0, None]
    assert assign_one_to_one(scores, [0.0, 0.0]) == [0, 1]


def test_open_set_threshold_is_a_quantile_of_leave_one_out_scores():
    rng = np.random.default_rng(0)
    centres = np.eye(DIM)[:4]
    vectors = np.concatenate([c + 0.3 * rng.standard_normal((5, DIM)) for c in centres])
    owners = np.repeat(np.arange(4), 5)
    low, high = open_set_threshold(vectors, owners, 0.05), open_set_threshold(vectors, owners, 0.5)
    assert 0 < low < high < 1
    # the spread-out identities lower it: their own held-out views score lower
    noisy = np.concatenate([c + 0.8 * rng.standard_normal((5, DIM)) for c in centres])
    assert open_set_threshold(noisy, owners, 0.05) < low
    assert open_set_threshold(vectors[::5], owners[::5]) is None  # one image per identity: nothing to learn from


@pytest.mark.parametrize("margin, remembered", [(0.0, True), (0.1, False)])
def test_an_ambiguous_finished_track_does_not_teach_its_identity_a_look_alike(margin, remembered):
    """p1 and p2 look alike; a track between them (cosine 0.87 to p1, 0.84 to p2) is assigned p1.
    With a memory margin of 0.1 its aggregate is not added to p1 (which would move p1 towards
    p2's look); a clear track of p1 (0.99 vs 0.34) is remembered either way."""
    p1, p2 = _unit(1, 0.25), _unit(0.25, 1)
    gallery = _gallery(p1, p2)
    assigner = IdentityAssigner(gallery, new_identities=False, memory_observations=4, memory_margin=margin)
    track = _Track("cam1", 0)
    track.set(_unit(1, 0.95), 0)
    assigner.update("cam1", 0, [track])
    assert track.identity == 1
    assigner.update("cam1", 5, [])  # the track is no longer active: it is remembered, or not
    assert (len(gallery.vectors) == 3) is remembered
    confident = _Track("cam2", 1)
    confident.set(_unit(1, 0.1), 6)  # p1 clearly: remembered under either setting
    assigner.update("cam2", 6, [confident])
    assigner.update("cam2", 12, [])
    assert len(gallery.vectors) == (4 if remembered else 3)
