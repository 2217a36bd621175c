"""OpenCV's HOG + linear SVM people detector (Dalal and Triggs): no weights to download, no training.

The SVM ships inside OpenCV 4 (``cv2.HOGDescriptor_getDefaultPeopleDetector``, a 64 x 128
window trained on INRIA Person; OpenCV 5 dropped it). Works on moving and standing people
alike, unlike background subtraction, but only for people at least ``min_height`` pixels tall
(about 100 px: the person fills about 3/4 of the window), and it is slow on a CPU: frames
are scanned at every ``scale`` step. Settings:

- ``resize``: the frame is scaled by this factor first (0.5: a 640 x 360 frame is scanned at
  320 x 180, so people from about 200 px tall are found, four times faster; 1.0 by default);
- ``win_stride`` 8 px, ``scale`` 1.05 between pyramid levels, ``hit_threshold`` 0 (SVM margin);
- boxes are grouped by OpenCV (``group_threshold`` 2), then shrunk from the window to the
  person (``shrink``: fraction of width and of height cut from each side; the INRIA window
  keeps a margin of about 16 px around a 96 px person; 0.24 and 0.13 are the median margins
  measured against the `default` scene's ground truth), then non-maximum suppressed at IoU 0.5;
- confidence = SVM margin mapped to [0.3, 1]: ``0.3 + 0.7 * min(1, margin / 1.5)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edge_reid.errors import MissingDependencyError
from edge_reid.stream.detectors.base import DETECTORS, Detections, Detector
from edge_reid.stream.detectors.onnx_yolo import nms


@DETECTORS.register("hog")
class HogPeopleDetector(Detector):
    """HOG people detector (see the module docstring for the settings)."""

    def __init__(self, resize: float = 1.0, win_stride: int = 8, scale: float = 1.05, hit_threshold: float = 0.0,
                 group_threshold: int = 2, shrink: Sequence[float] = (0.24, 0.13), nms_iou: float = 0.5,
                 **_: Any) -> None:
        import cv2

        if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
            raise MissingDependencyError("This OpenCV has no HOG people detector (OpenCV 5 dropped it); "
                                         "install 'opencv-python>=4.8,<5'.")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.resize, self.win_stride, self.scale = float(resize), int(win_stride), float(scale)
        self.hit_threshold, self.group_threshold = float(hit_threshold), int(group_threshold)
        self.shrink, self.nms_iou = (float(shrink[0]), float(shrink[1])), float(nms_iou)

    def detect(self, frame: np.ndarray, camera_id: str = "cam1") -> Detections:
        import cv2

        image = frame if self.resize == 1.0 else cv2.resize(frame, None, fx=self.resize, fy=self.resize,
                                                             interpolation=cv2.INTER_AREA)
        rects, weights = self.hog.detectMultiScale(image, hitThreshold=self.hit_threshold,
                                                   winStride=(self.win_stride, self.win_stride), padding=(8, 8),
                                                   scale=self.scale, groupThreshold=self.group_threshold)
        if len(rects) == 0:
            return Detections.empty()
        rects = np.asarray(rects, np.float32).reshape(-1, 4) / self.resize
        margin = np.asarray(weights, np.float32).reshape(-1)
        x, y, w, h = rects.T
        sx, sy = self.shrink
        boxes = np.stack([x + sx * w, y + sy * h, x + (1 - sx) * w, y + (1 - sy) * h], axis=1)
        H, W = frame.shape[:2]
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, W)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, H)
        scores = (0.3 + 0.7 * np.clip(margin / 1.5, 0.0, 1.0)).astype(np.float32)
        keep = nms(boxes, scores, self.nms_iou)
        return Detections(boxes[keep].astype(np.float32), scores[keep])
