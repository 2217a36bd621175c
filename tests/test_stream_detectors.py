"""YOLO post-processing on synthetic raw outputs, the ONNX path on a tiny real graph, and the
background-subtraction detector on a rendered moving person."""

from __future__ import annotations

import numpy as np
import pytest

from edge_reid.errors import EdgeReidError
from edge_reid.stream.detectors import DETECTORS, build_detector
from edge_reid.stream.detectors.onnx_yolo import decode_yolo, letterbox, nms


def _v8_output(rows):
    """rows of (cx, cy, w, h, person, other) -> a 1 x 6 x N YOLOv8 tensor."""
    return np.asarray(rows, np.float32).T[None]


def test_registry_lists_both_detectors():
    assert {"background", "onnx_yolo"} <= set(DETECTORS.names())
    with pytest.raises(EdgeReidError, match="known detectors"):
        build_detector("nope")


def test_decode_v8_keeps_persons_applies_threshold_and_nms():
    out = _v8_output([
        (100, 100, 40, 80, 0.90, 0.10),   # person
        (102, 101, 40, 80, 0.80, 0.05),   # duplicate of the first (IoU > 0.5): suppressed
        (300, 200, 50, 100, 0.30, 0.00),  # below 0.35
        (400, 200, 50, 100, 0.10, 0.95),  # another class
        (500, 300, 20, 60, 0.50, 0.20),   # second person
    ])
    boxes, scores, classes = decode_yolo(out, layout="v8")
    assert len(boxes) == 2
    np.testing.assert_allclose(scores, [0.90, 0.50], rtol=1e-6)
    np.testing.assert_allclose(boxes[0], [80, 60, 120, 140])
    assert set(classes.tolist()) == {0}


def test_decode_v5_multiplies_objectness():
    out = np.array([[[50, 50, 20, 40, 0.5, 0.9, 0.1],    # 0.45 -> kept
                     [150, 50, 20, 40, 0.4, 0.8, 0.1],   # 0.32 -> dropped
                     [250, 50, 20, 40, 0.9, 0.1, 0.9]]],  # class 1 -> dropped
                   np.float32)
    boxes, scores, _ = decode_yolo(out, layout="v5")
    assert len(boxes) == 1
    assert scores[0] == pytest.approx(0.45)
    # a realistic export has many more candidates than channels: 'auto' tells the layouts apart
    padded = np.concatenate([out, np.zeros((1, 100, 7), np.float32)], axis=1)
    assert len(decode_yolo(padded, layout="auto")[0]) == 1
    v8 = np.concatenate([_v8_output([(50, 50, 20, 40, 0.9, 0.1)]), np.zeros((1, 6, 100), np.float32)], axis=2)
    assert decode_yolo(v8, layout="auto")[1][0] == pytest.approx(0.9)


def test_nms_is_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert len(nms(boxes, scores, 0.5)) == 1
    out = _v8_output([(5, 5, 10, 10, 0.9, 0.0), (6, 6, 10, 10, 0.0, 0.8)])
    _, _, classes = decode_yolo(out, layout="v8", classes=None)
    assert sorted(classes.tolist()) == [0, 1]


def test_letterbox_keeps_aspect_and_centres():
    img = np.zeros((100, 200, 3), np.uint8)
    out, scale, (px, py) = letterbox(img, (64, 64))
    assert out.shape == (64, 64, 3) and scale == pytest.approx(0.32)
    assert px == 0 and py == pytest.approx(16, abs=1)


def _tiny_yolo_v8(path, boxes_scores):
    """A real ONNX graph: image 1x3x64x64 -> constant predictions + 0 * mean(image), v8 layout."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    preds = np.asarray(boxes_scores, np.float32).T[None]  # 1 x 6 x N
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["preds", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(preds.shape))],
        [numpy_helper.from_array(preds, "preds"), numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_yolo_detector_runs_a_real_graph_and_maps_boxes_back(tmp_path):
    # 64x64 network input; a 128 x 64 (w x h) frame is letterboxed at scale 0.5 with 16 px top padding
    path = _tiny_yolo_v8(tmp_path / "tiny.onnx", [(32, 32, 8, 16, 0.9, 0.0), (10, 40, 4, 8, 0.2, 0.0)])
    det = build_detector("onnx_yolo", model=str(path), layout="v8")
    assert det.size == (64, 64)
    result = det.detect(np.zeros((64, 128, 3), np.uint8))
    assert len(result) == 1
    np.testing.assert_allclose(result.boxes[0], [56, 16, 72, 48], atol=1.0)
    assert result.scores[0] == pytest.approx(0.9)


def test_onnx_yolo_missing_model_is_one_sentence(tmp_path):
    with pytest.raises(EdgeReidError, match="does not exist"):
        build_detector("onnx_yolo", model=str(tmp_path / "none.onnx"))
    with pytest.raises(EdgeReidError, match="--detector-model"):
        build_detector("onnx_yolo")


def test_background_detector_finds_a_moving_person():
    det = build_detector("background")
    rng = np.random.default_rng(0)
    background = rng.integers(60, 90, size=(240, 320, 3), dtype=np.uint8)
    found = []
    for t in range(30):
        frame = background.copy()
        if t >= 10:
            x = 40 + 6 * t
            frame[80:200, x:x + 40] = (30, 160, 220)  # a 120 x 40 "person"
        result = det.detect(frame, "camA")
        if t >= 12:
            found.append(result)
    hits = [r for r in found if len(r) == 1]
    assert len(hits) >= 0.8 * len(found)
    x1, y1, x2, y2 = hits[-1].boxes[0]
    assert abs(y1 - 80) <= 4 and abs(y2 - 200) <= 4 and 30 <= x2 - x1 <= 50
    # a short wide blob (a car) is not a person
    det2 = build_detector("background")
    for t in range(15):
        frame = background.copy()
        if t >= 5:
            frame[150:190, 20 + 8 * t:140 + 8 * t] = (200, 50, 50)
        out = det2.detect(frame, "camB")
    assert len(out) == 0
