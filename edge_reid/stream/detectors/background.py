"""Background-subtraction person detector for static cameras: no weights needed.

Per camera: OpenCV MOG2 (or KNN) foreground mask -> shadows dropped -> morphological opening
(noise) and a tall closing (joins head, torso and legs) -> external contours -> boxes merged
when they overlap horizontally (one person split in two) -> person-shaped filters:

- height at least ``min_height`` (fraction of the frame height, default 0.12),
- height / width between ``min_aspect`` 1.1 and ``max_aspect`` 5.0 (``edge_aspect`` 12 for a box
  touching the left or right frame edge: a person walking in shows a sliver first),
- foreground fill of the box at least ``min_fill`` 0.2.

Stacked boxes are merged when the gap between them is at most ``stack_gap`` 0.8 x the taller
one's height (legs of the floor's colour leave a person's mask in two pieces). MOG2's shadow
test (``shadow_threshold``, OpenCV's 0.5: a pixel 50-100 % as bright as the background with the
same chroma) drops shadows; a person dressed like the floor loses those pixels too.

Before the filters, boxes side by side with the same vertical extent whose union is still
person-shaped (width <= ``join_width`` x height: one person cut in two by a pillar) are joined,
and a box wider than ``split_width`` 0.6 x its height (people walking together form one blob) is
cut into ``round(width / (person_width x height))`` equal columns, each shrunk to its own
foreground, when that makes at most ``max_people`` columns (a wider blob, a car, is no group). People in the scenes are 0.23-0.42 times as wide as tall (5-95 %).

The confidence is the fill fraction mapped into [0.4, 1] and lowered for boxes cut by the
frame edge, so the tracker's high/low split and the pipeline's quality weights see partially
visible people as less reliable. The first ``warmup`` frames only train the background model;
the learning rate is 1/n over the first ``bootstrap`` frames, then 1/``history`` so that a
person who slows down is not absorbed into the background (someone standing in the very first
frames leaves a "ghost" that fades over ``history`` frames).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from edge_reid.errors import InvalidInputError
from edge_reid.stream.detectors.base import DETECTORS, Detections, Detector
from edge_reid.stream.crops import int_box


@DETECTORS.register("background")
class BackgroundSubtractionDetector(Detector):
    """Moving people on a static background (see the module docstring for the filters)."""

    def __init__(self, method: str = "mog2", history: int = 300, var_threshold: float = 24.0,
                 min_height: float = 0.12, min_aspect: float = 1.1, max_aspect: float = 5.0,
                 min_fill: float = 0.2, warmup: int = 2, learning_rate: float = -1.0, bootstrap: int = 5,
                 join_width: float = 0.45, split_width: float = 0.6, person_width: float = 0.36, max_people: int = 4,
                 shadow_threshold: float = 0.5, stack_gap: float = 0.8, edge_aspect: float = 12.0,
                 **_: Any) -> None:
        if method not in ("mog2", "knn"):
            raise InvalidInputError(f"Unknown background method '{method}'; choose mog2 or knn.")
        self.method, self.history, self.var_threshold = method, int(history), float(var_threshold)
        self.min_height, self.min_aspect, self.max_aspect = float(min_height), float(min_aspect), float(max_aspect)
        self.min_fill, self.warmup, self.learning_rate = float(min_fill), int(warmup), float(learning_rate)
        self.bootstrap = int(bootstrap)
        self.join_width, self.split_width, self.person_width = float(join_width), float(split_width), float(person_width)
        self.max_people = int(max_people)
        self.shadow_threshold, self.stack_gap, self.edge_aspect = float(shadow_threshold), float(stack_gap), float(edge_aspect)
        self._models: Dict[str, Any] = {}
        self._seen: Dict[str, int] = {}
        self._masks: Dict[str, np.ndarray] = {}

    def _model(self, camera_id: str) -> Any:
        import cv2

        if camera_id not in self._models:
            if self.method == "mog2":
                self._models[camera_id] = cv2.createBackgroundSubtractorMOG2(
                    history=self.history, varThreshold=self.var_threshold, detectShadows=True)
            else:
                self._models[camera_id] = cv2.createBackgroundSubtractorKNN(history=self.history, detectShadows=True)
            self._models[camera_id].setShadowThreshold(self.shadow_threshold)
            self._seen[camera_id] = 0
        return self._models[camera_id]

    def foreground(self, frame: np.ndarray, camera_id: str = "cam1") -> np.ndarray:
        """The cleaned binary foreground mask (uint8 0/255) of ``frame``."""
        import cv2

        model = self._model(camera_id)
        self._seen[camera_id] += 1
        rate = self.learning_rate
        if rate < 0:  # fast bootstrap on the first frames, then slow so people are not absorbed
            rate = 1.0 / self._seen[camera_id] if self._seen[camera_id] <= self.bootstrap else 1.0 / self.history
        raw = model.apply(frame, learningRate=rate)
        mask = np.where(raw == 255, 255, 0).astype(np.uint8)  # 127 = shadow
        h = frame.shape[0]
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        tall = max(3, int(h * 0.03)) | 1
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (5, tall)))
        return cv2.dilate(mask, np.ones((3, 3), np.uint8))

    def detect(self, frame: np.ndarray, camera_id: str = "cam1") -> Detections:
        import cv2

        mask = self.foreground(frame, camera_id)
        self._masks[camera_id] = mask
        if self._seen[camera_id] <= self.warmup:
            return Detections.empty()
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes = [list(cv2.boundingRect(c)) for c in contours]
        boxes = _merge_stacked([[x, y, x + w, y + h] for x, y, w, h in boxes if w * h >= 16], self.stack_gap)
        if self.join_width > 0:
            boxes = _join_side_by_side(boxes, self.join_width)
        if self.split_width > 0:
            boxes = [part for box in boxes
                     for part in _split_wide(box, mask, self.split_width, self.person_width, self.max_people)]
        H, W = frame.shape[:2]
        out_boxes, out_scores = [], []
        for x1, y1, x2, y2 in boxes:
            bw, bh = x2 - x1, y2 - y1
            side = x1 <= 1 or x2 >= W - 1  # a person half out of the frame is a narrow sliver
            if bh < self.min_height * H or not self.min_aspect <= bh / max(bw, 1) <= (
                    max(self.max_aspect, self.edge_aspect) if side else self.max_aspect):
                continue
            fill = float(mask[y1:y2, x1:x2].mean()) / 255.0
            if fill < self.min_fill:
                continue
            score = 0.4 + 0.6 * min(1.0, fill / 0.6)
            if side or y1 <= 1 or y2 >= H - 1:
                score *= 0.7  # cut by the frame edge: partly visible
            out_boxes.append([x1, y1, x2, y2])
            out_scores.append(score)
        if not out_boxes:
            return Detections.empty()
        return Detections(np.asarray(out_boxes, np.float32), np.asarray(out_scores, np.float32))

    def support(self, box: np.ndarray, camera_id: str = "cam1") -> Optional[float]:
        """The foreground fraction of ``box`` in the last mask of ``camera_id`` (the part outside the
        frame counts as background); None before the first frame or during the warm-up."""
        mask = self._masks.get(camera_id)
        if mask is None or self._seen.get(camera_id, 0) <= self.warmup:
            return None
        H, W = mask.shape[:2]
        bx1, by1, bx2, by2 = (float(v) for v in box[:4])
        area = (bx2 - bx1) * (by2 - by1)
        x1, y1, x2, y2 = int_box(box[:4], W, H)
        if area <= 0 or x2 <= x1 or y2 <= y1:
            return 0.0
        return min(1.0, float(np.count_nonzero(mask[y1:y2, x1:x2])) / area)


def _merge_stacked(boxes: List[List[int]], max_gap: float) -> List[List[int]]:
    """Merge boxes that share most of their horizontal extent and are at most ``max_gap`` x the taller
    one's height apart (a person split at the waist)."""
    boxes = sorted(boxes, key=lambda b: b[0])
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                overlap = min(a[2], b[2]) - max(a[0], b[0])
                narrow = min(a[2] - a[0], b[2] - b[0])
                gap = max(a[1], b[1]) - min(a[3], b[3])
                if narrow > 0 and overlap >= 0.6 * narrow and gap <= max_gap * max(a[3] - a[1], b[3] - b[1]):
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def _join_side_by_side(boxes: List[List[int]], max_width: float) -> List[List[int]]:
    """Join two boxes with nearly the same top and bottom whose union is at most ``max_width``
    times as wide as tall (one person cut in two by a thin occluder)."""
    boxes = sorted(boxes, key=lambda b: b[0])
    joined = True
    while joined and len(boxes) > 1:
        joined = False
        for i in range(len(boxes) - 1):
            a, b = boxes[i], boxes[i + 1]
            h = max(a[3], b[3]) - min(a[1], b[1])
            same_rows = abs(a[1] - b[1]) <= 0.15 * h and abs(a[3] - b[3]) <= 0.15 * h
            union = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
            if same_rows and union[2] - union[0] <= max_width * h and b[0] - a[2] <= 0.15 * h:
                boxes[i:i + 2] = [union]
                joined = True
                break
    return boxes


def _split_wide(box: List[int], mask: np.ndarray, split_width: float, person_width: float,
                max_people: int = 4) -> List[List[int]]:
    """A box wider than ``split_width`` x its height cut into person-wide columns, each shrunk to its
    foreground (see the module docstring); other boxes unchanged."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    if h <= 0 or w <= split_width * h:
        return [box]
    parts = max(2, int(round(w / (person_width * h))))
    if parts > max_people:
        return [box]
    edges = np.linspace(x1, x2, parts + 1).round().astype(int)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        rows = np.flatnonzero(mask[y1:y2, a:b].any(axis=1))
        cols = np.flatnonzero(mask[y1:y2, a:b].any(axis=0))
        if len(rows) and len(cols):
            out.append([a + int(cols[0]), y1 + int(rows[0]), a + int(cols[-1]) + 1, y1 + int(rows[-1]) + 1])
    return out or [box]
