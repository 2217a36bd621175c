"""What the stream loop keeps: its knobs, each track's state, and each frame's tracked boxes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple

import numpy as np

from edge_reid.stream.identities import MIN_OBSERVATIONS, MIN_QUALITY, STICKINESS, SWITCH_AFTER
from edge_reid.stream.sources import FramePacket
from edge_reid.stream.tracker import DEFAULT_TRACKER


@dataclass
class StreamConfig:
    """Knobs of the loop (defaults chosen for 10-30 FPS cameras and people 100+ pixels tall)."""

    embed_interval: int = 1          # embed a track's crop every N-th frame it is seen
    min_observations: int = MIN_OBSERVATIONS  # embedded crops before an unmatched track becomes an identity
    #                                  (20: 2 s at 10 FPS with embed_interval 1; a crossing's fragment is not a person)
    min_quality: float = MIN_QUALITY  # summed quality weight needed for that
    new_identities: bool = True      # unmatched confident tracks become new identities
    min_crop_height: int = 24        # smaller boxes are tracked but not embedded
    max_crop_aspect: float = 5.0     # nor are boxes more than this many times as tall as wide (slivers at the frame edge)
    split_similarity: float = 0.5    # an interior crop below this cosine to its track's aggregate "diverges"
    split_after: int = 4             # consecutive diverging interior crops that split the track
    split_min_observations: int = 4  # interior crops a track needs before it can be split
    identity_scope: str = "all"      # one-to-one over all cameras' live tracks ("camera": per camera)
    stickiness: float = STICKINESS   # added to a track's current identity's score in the assignment
    switch_after: int = SWITCH_AFTER  # assignments in a row another identity must win before a track switches
    memory_observations: int = 10    # a finished track with this many crops adds its aggregate to its identity (0: off)
    memory_margin: float = 0.0       # ... if its identity beats every other by this cosine margin
    camera_centring: bool = False    # match tracks minus their camera's running mean embedding (domain.py)
    centring_min_count: int = 300    # crops a camera embeds before its mean is subtracted
    max_overlap: float = 0.05        # crops overlapping another detection by this IoU are not folded in
    tracker_kind: str = DEFAULT_TRACKER  # a TRACKERS name: "appearance" (motion + embeddings) or "bytetrack"
    tracker: Dict[str, Any] = field(default_factory=dict)
    coast: bool = True               # report undetected tracks at their prediction while the detector's mask supports it
    infrared: Set[str] = field(default_factory=set)  # cameras whose crops take the infrared path (modality 1)
    camera_index: Dict[str, int] = field(default_factory=dict)  # source name -> camera id of a camera-aware model


@dataclass
class TrackState:
    """What the pipeline knows about one track in one camera."""

    camera_id: str
    track_id: int                    # the pipeline's id (unique per camera, also after splits)
    first_frame: int
    tracker_id: int = -1             # the tracker's id (shared by the segments of a split track)
    last_frame: int = 0
    weight_sum: float = 0.0
    vector_sum: Optional[np.ndarray] = None
    observations: int = 0
    seen: int = 0
    identity: Optional[int] = None
    score: float = 0.0
    owns_identity: bool = False      # the identity was created from this track
    interior: int = 0                # embedded crops not touching the frame border
    diverging: List[Tuple[np.ndarray, float]] = field(default_factory=list)
    pending: Dict[int, int] = field(default_factory=dict)  # identity -> assignments in a row it won (hysteresis)

    @property
    def key(self) -> Tuple[str, int]:
        return self.camera_id, self.track_id

    def aggregate(self) -> Optional[np.ndarray]:
        if self.vector_sum is None or self.weight_sum <= 0:
            return None
        v = self.vector_sum / self.weight_sum
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


@dataclass
class TrackedBox:
    """One tracked person in one frame (what drawing and the event log need)."""

    track_id: int
    box: Tuple[float, float, float, float]
    confidence: float
    identity: Optional[int]
    name: Optional[str]
    score: float


@dataclass
class FrameResult:
    packet: FramePacket
    boxes: List[TrackedBox]


__all__ = ["FrameResult", "StreamConfig", "TrackState", "TrackedBox"]
