"""Per-crop helpers of the stream loop: integer crop boxes, a crop's quality weight, stage timing."""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

#: the stream loop's stages, in order (per-stage milliseconds per frame in the summary)
STAGES = ("decode", "detect", "track", "embed", "match", "output")


def int_box(box: np.ndarray, w: int, h: int) -> Tuple[int, int, int, int]:
    """``box`` (x1, y1, x2, y2) rounded to pixels and clipped to a ``w`` x ``h`` frame."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    return max(0, x1), max(0, y1), min(w, x2), min(h, y2)


def crop_quality(crop: np.ndarray, confidence: float, at_edge: bool) -> float:
    """Weight of one crop in its track's aggregate (see :mod:`edge_reid.stream.pipeline`)."""
    import cv2

    size = min(1.0, crop.shape[0] / 128.0)
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    sharp = min(1.0, float(cv2.Laplacian(gray, cv2.CV_32F).var()) / 100.0)
    return float(max(confidence, 0.0) * size * max(sharp, 0.05) * (0.3 if at_edge else 1.0))


class StageTimer:
    """Accumulated seconds per stage."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {s: 0.0 for s in STAGES}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds
