"""The detector interface: a BGR frame in, person boxes with confidences out."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from edge_reid.registry import Registry

#: Person detectors by name: ``background``, ``onnx_yolo``, ``hog``.
DETECTORS: Registry = Registry("detector")


@dataclass
class Detections:
    """``boxes``: N x 4 float32 (x1, y1, x2, y2) in frame pixels; ``scores``: N float32 in [0, 1]."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return int(len(self.boxes))


class Detector(abc.ABC):
    """Finds people in a frame. State (a background model) is kept per ``camera_id``."""

    @abc.abstractmethod
    def detect(self, frame: np.ndarray, camera_id: str = "cam1") -> Detections:
        """Person boxes in ``frame`` (BGR uint8 H x W x 3)."""

    def support(self, box: np.ndarray, camera_id: str = "cam1") -> Optional[float]:
        """How well the last frame of ``camera_id`` shows a person in ``box`` (x1, y1, x2, y2), in [0, 1]:
        for a background model the foreground fraction of the box (the part outside the
        frame counts as background). None: the detector has no such evidence
        (then the tracker does not keep undetected tracks alive by prediction)."""
        return None


def build_detector(name: str, **options: Any) -> Detector:
    """The detector registered as ``name`` built with ``options``."""
    import edge_reid.stream.detectors  # noqa: F401  (registers the built-in detectors)

    return DETECTORS.get(name)(**options)
