"""Person detectors behind one interface (registry ``DETECTORS``).

- ``background``: OpenCV background subtraction + morphology + person-shaped contour boxes;
  no weights, for static cameras.
- ``onnx_yolo``: a YOLOv5/YOLOv8-family ONNX export run with onnxruntime (TensorRT / CUDA
  execution providers where present), person class only.
- ``hog``: OpenCV 4's HOG + linear SVM people detector; no weights to download, finds
  standing people too, slow on a CPU.
"""

from edge_reid.stream.detectors import background, hog, onnx_yolo  # noqa: F401  (registration)
from edge_reid.stream.detectors.base import DETECTORS, Detections, Detector, build_detector

__all__ = ["DETECTORS", "Detections", "Detector", "build_detector"]
