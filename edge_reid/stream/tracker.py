"""Per-camera multi-object tracking: trackers by name (``TRACKERS``), one instance per camera.

- ``appearance`` (default): motion (Kalman) + appearance association, lost-track buffer
  (:mod:`edge_reid.stream.reid_tracker`); it uses the embeddings of the frame's detections.
- ``bytetrack``: ByteTrack, Roboflow's maintained implementation, boxes and scores only.

supervision 0.27+ no longer ships ``sv.ByteTrack``: it moved to Roboflow's ``trackers``
package as ``trackers.ByteTrackTracker`` (supervision's own annotators import it from there),
which takes and returns ``sv.Detections``. One tracker per camera: track ids are only
meaningful within a camera; identities across cameras come from the gallery.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from edge_reid.errors import MissingDependencyError
from edge_reid.registry import Registry
from edge_reid.stream.detectors.base import Detections
from edge_reid.stream.reid_tracker import AppearanceTracker

#: Per-camera trackers by name: ``appearance`` (default), ``bytetrack``; each has
#: ``update(detections, embeddings)`` -> [(track_id, detection_index)].
TRACKERS: Registry = Registry("tracker")
TRACKERS.register("appearance")(AppearanceTracker)
DEFAULT_TRACKER = "appearance"


def _import_bytetrack() -> Tuple[Any, Any]:
    try:
        import supervision as sv
        from trackers import ByteTrackTracker
    except ImportError:
        raise MissingDependencyError(
            "Tracking needs ByteTrack from Roboflow's 'trackers' package (with supervision); "
            "install it with 'pip install trackers supervision'.") from None
    return sv, ByteTrackTracker


@TRACKERS.register("bytetrack")
class CameraTracker:
    """ByteTrack for one camera: ``update(detections)`` -> [(track_id, detection_index)].

    Defaults suit detections scored in [0.4, 1] at 10-30 FPS: tracks start from boxes scored
    >= ``activation`` 0.45, the high/low split is at ``high`` 0.6, a lost track is kept for
    ``lost_frames`` frames (at ``fps``) and boxes associate at IoU >= ``min_iou`` 0.1.
    """

    uses_embeddings = False
    check_available = staticmethod(_import_bytetrack)

    def __init__(self, fps: float = 10.0, lost_frames: int = 15, activation: float = 0.45, high: float = 0.6,
                 min_iou: float = 0.1, min_frames: int = 1, **_: Any) -> None:
        self._sv, cls = _import_bytetrack()
        # the library counts the lost buffer in 30 FPS frames and rescales by frame_rate
        self._tracker = cls(lost_track_buffer=max(1, int(round(lost_frames * 30.0 / max(fps, 1.0)))),
                            frame_rate=float(fps or 10.0), track_activation_threshold=activation,
                            minimum_consecutive_frames=max(1, int(min_frames)),
                            minimum_iou_threshold=min_iou, high_conf_det_threshold=high)

    def update(self, detections: Detections, embeddings: Any = None) -> List[Tuple[int, int]]:
        """Associate this frame's detections (boxes and scores; ``embeddings`` are not used)."""
        n = len(detections)
        dets = self._sv.Detections(xyxy=detections.boxes.astype(np.float32).reshape(-1, 4),
                                   confidence=detections.scores.astype(np.float32).reshape(-1),
                                   data={"det_index": np.arange(n)})
        tracked = self._tracker.update(dets)
        if tracked.tracker_id is None or len(tracked) == 0:
            return []
        index = tracked.data.get("det_index")
        return [(int(t), int(i)) for t, i in zip(tracked.tracker_id, index) if int(t) >= 0]


class MultiCameraTracker:
    """One tracker of kind ``kind`` (a ``TRACKERS`` name) per camera id, created on first sight."""

    def __init__(self, kind: str = DEFAULT_TRACKER, **options: Any) -> None:
        self.factory = TRACKERS.get(kind)
        self.kind, self.options = kind, options
        self._trackers: Dict[str, Any] = {}
        check = getattr(self.factory, "check_available", None)
        if check is not None:
            check()  # fail early, with the install hint

    @property
    def uses_embeddings(self) -> bool:
        """Whether the trackers associate by appearance (then every detection is embedded first)."""
        return bool(getattr(self.factory, "uses_embeddings", False))

    def update(self, camera_id: str, detections: Detections, embeddings: Any = None,
               support: Any = None) -> List[Tuple[int, int]]:
        """[(track id, detection index)] of the camera's confirmed tracks seen in this frame; ``support``
        (box -> foreground evidence) goes to trackers that coast (class attribute ``coasts``), which then
        report undetected tracks (:meth:`coasted`)."""
        if camera_id not in self._trackers:
            self._trackers[camera_id] = self.factory(**self.options)
        if support is None or not getattr(self.factory, "coasts", False):
            return self._trackers[camera_id].update(detections, embeddings)
        return self._trackers[camera_id].update(detections, embeddings, support)

    def coasted(self, camera_id: str) -> List[Tuple[int, np.ndarray]]:
        """(track id, predicted box) of the camera's tracks kept by prediction in the last update."""
        return list(getattr(self._trackers.get(camera_id), "coasted", []))
