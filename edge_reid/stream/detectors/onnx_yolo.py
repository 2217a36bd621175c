"""YOLO-family ONNX person detector (YOLOv5 and YOLOv8/v11 export layouts) on onnxruntime.

Pre-processing: letterbox to the model's square input (default 640; grey 114 padding, aspect
kept), BGR -> RGB, float32 in [0, 1], NCHW.

Post-processing (:func:`decode_yolo`), thresholds chosen for people on edge cameras:

- ``v5`` layout: 1 x N x (5 + C) rows ``cx, cy, w, h, objectness, class scores``;
  score = objectness x class score.
- ``v8`` layout: 1 x (4 + C) x N columns ``cx, cy, w, h, class scores`` (no objectness).
- ``auto`` picks ``v8`` when the middle axis is the shorter one (channels first), else ``v5``.
- Only the person class (COCO index 0) is kept; **confidence threshold 0.35** (a recall-leaning
  value: the tracker's low-score stage uses weak boxes, the embedder quality-weights them);
  **class-aware NMS at IoU 0.5** (boxes of different classes never suppress each other).

Execution providers: TensorRT, then CUDA, then CPU, as the runtime's ONNX Runtime backend
picks them, so a Jetson runs the detector through TensorRT with the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.stream.detectors.base import DETECTORS, Detections, Detector

CONF_THRESHOLD = 0.35
NMS_IOU = 0.5
PERSON_CLASS = 0


def letterbox(image: np.ndarray, size: Tuple[int, int] = (640, 640), color: int = 114
              ) -> Tuple[np.ndarray, float, Tuple[float, float]]:
    """Resize keeping the aspect ratio and pad to ``size`` (H, W); returns (image, scale, (pad_x, pad_y))."""
    import cv2

    h, w = image.shape[:2]
    scale = min(size[0] / h, size[1] / w)
    nh, nw = int(round(h * scale)), int(round(w * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR) if (nh, nw) != (h, w) else image
    pad_y, pad_x = (size[0] - nh) / 2.0, (size[1] - nw) / 2.0
    top, left = int(round(pad_y - 0.1)), int(round(pad_x - 0.1))
    out = np.full((size[0], size[1], 3), color, dtype=np.uint8)
    out[top:top + nh, left:left + nw] = resized
    return out, scale, (float(left), float(top))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (highest score first)."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    x1, y1, x2, y2 = boxes.T
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        xx1, yy1 = np.maximum(x1[i], x1[order[1:]]), np.maximum(y1[i], y1[order[1:]])
        xx2, yy2 = np.minimum(x2[i], x2[order[1:]]), np.minimum(y2[i], y2[order[1:]])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        overlap = inter / np.maximum(areas[i] + areas[order[1:]] - inter, 1e-9)
        order = order[1:][overlap <= iou]
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float = NMS_IOU) -> np.ndarray:
    """Class-aware NMS: boxes are offset per class so different classes never overlap."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    offset = classes.astype(np.float32)[:, None] * (float(boxes.max()) + 1.0)
    return nms(boxes + offset, scores, iou)


def decode_yolo(output: np.ndarray, layout: str = "auto", conf: float = CONF_THRESHOLD, iou: float = NMS_IOU,
                classes: Optional[Sequence[int]] = (PERSON_CLASS,)) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw YOLO output (batch 1) -> (boxes xyxy in network pixels, scores, class ids) after NMS."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 3:
        if out.shape[0] != 1:
            raise InvalidInputError(f"YOLO output batch must be 1; got shape {out.shape}.")
        out = out[0]
    if out.ndim != 2:
        raise InvalidInputError(f"YOLO output must be 2-D or 1 x A x B; got shape {np.shape(output)}.")
    if layout == "auto":
        layout = "v8" if out.shape[0] < out.shape[1] else "v5"
    if layout == "v8":
        rows = out.T
        if rows.shape[1] < 5:
            raise InvalidInputError(f"A YOLOv8 output needs 4 + classes rows; got shape {out.shape}.")
        cls_scores = rows[:, 4:]
    elif layout == "v5":
        rows = out
        if rows.shape[1] < 6:
            raise InvalidInputError(f"A YOLOv5 output needs 5 + classes columns; got shape {out.shape}.")
        cls_scores = rows[:, 5:] * rows[:, 4:5]
    else:
        raise InvalidInputError(f"Unknown YOLO layout '{layout}'; choose auto, v5 or v8.")
    class_ids = np.argmax(cls_scores, axis=1)
    scores = cls_scores[np.arange(len(rows)), class_ids]
    keep = scores >= conf
    if classes is not None:
        keep &= np.isin(class_ids, np.asarray(list(classes)))
    rows, scores, class_ids = rows[keep], scores[keep], class_ids[keep]
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    kept = batched_nms(boxes, scores, class_ids, iou)
    return boxes[kept], scores[kept].astype(np.float32), class_ids[kept]


@DETECTORS.register("onnx_yolo")
class OnnxYoloDetector(Detector):
    """A YOLOv5/v8 ONNX export; ``model`` is its path. See the module docstring for thresholds."""

    def __init__(self, model: Optional[str] = None, conf: float = CONF_THRESHOLD, iou: float = NMS_IOU,
                 layout: str = "auto", input_size: Optional[int] = None, providers: Optional[Sequence[str]] = None,
                 threads: int = 0, **_: Any) -> None:
        if not model:
            raise InvalidInputError("The onnx_yolo detector needs a model: pass --detector-model PATH.onnx.")
        path = Path(model).expanduser()
        if not path.is_file():
            raise InvalidInputError(f"Detector model {path} does not exist.")
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("The onnx_yolo detector needs onnxruntime; install it with 'pip install onnxruntime'.") from None
        from edge_reid.runtime.onnxruntime_backend import PREFERRED_PROVIDERS

        available = ort.get_available_providers()
        chosen = list(providers) if providers else [p for p in PREFERRED_PROVIDERS if p in available]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as exc:
            raise InvalidInputError(f"Detector model {path} is not a loadable ONNX model ({type(exc).__name__}).") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = list(inp.shape)
        static = [d for d in shape[2:] if isinstance(d, int) and d > 0]
        if input_size:
            self.size = (int(input_size), int(input_size))
        elif len(static) == 2:
            self.size = (int(static[0]), int(static[1]))
        else:
            self.size = (640, 640)  # dynamic-shape export: the YOLO default
        self.conf, self.iou, self.layout = float(conf), float(iou), layout

    def detect(self, frame: np.ndarray, camera_id: str = "cam1") -> Detections:
        image, scale, (pad_x, pad_y) = letterbox(frame, self.size)
        x = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) * (1.0 / 255.0)
        raw = self.session.run(None, {self.input_name: x})[0]
        boxes, scores, _ = decode_yolo(raw, self.layout, self.conf, self.iou)
        if len(boxes) == 0:
            return Detections.empty()
        boxes = (boxes - np.array([pad_x, pad_y, pad_x, pad_y], np.float32)) / scale
        h, w = frame.shape[:2]
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        good = (boxes[:, 2] - boxes[:, 0] >= 2) & (boxes[:, 3] - boxes[:, 1] >= 2)
        return Detections(boxes[good].astype(np.float32), scores[good])
