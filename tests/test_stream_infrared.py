"""Stream: an infrared source's crops reach a two-stream model as modality 1, others as 0."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ONNX_METADATA_KEY, ModelMeta
from edge_reid.stream.detectors import build_detector
from edge_reid.stream.gallery import Gallery
from edge_reid.stream.pipeline import StreamConfig, StreamPipeline
from edge_reid.stream.sources import FramePacket


def two_stream_embedder(path: Path):
    """A real (tiny) ONNX graph with inputs images + modality: mean colours of a 4 x 2 grid, then
    the infrared stream adds 1 to every component (so the two paths give different embeddings)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from edge_reid.runtime import load_embedder

    meta = ModelMeta(model="tiny_two_stream", input_size=(32, 16), embedding_dim=24, num_ids=0, dataset="test",
                     inputs=("images", "modality"))
    nodes = [helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
             helper.make_node("Cast", ["modality"], ["mod_f"], to=TensorProto.FLOAT),
             helper.make_node("Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])),
             helper.make_node("Unsqueeze", ["mod_f", "axes"], ["mod_col"]),
             helper.make_node("Add", ["flat", "mod_col"], ["embeddings"])]
    graph = helper.make_graph(nodes, "tiny_two_stream",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 16]),
                               helper.make_tensor_value_info("modality", TensorProto.INT64, ["N"])],
                              [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", 24])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, meta.to_json()
    onnx.save(proto, str(path))
    return load_embedder(path, "onnxruntime")


def _frame(t: int) -> np.ndarray:
    frame = np.full((240, 320, 3), 70, np.uint8)
    if t >= 3:
        x = 20 + 7 * t
        frame[60:120, x:x + 40] = (200, 60, 60)
        frame[120:180, x:x + 40] = (60, 60, 200)
    return frame


def test_infrared_camera_crops_take_the_infrared_path(tmp_path: Path) -> None:
    emb = two_stream_embedder(tmp_path / "two.onnx")
    crop = _frame(5)[60:180, 55:95]
    with pytest.raises(InvalidInputError, match="--infrared"):
        emb.embed([crop])
    assert not np.allclose(emb.embed([crop], modality=0), emb.embed([crop], modality=1))
    pipeline = StreamPipeline(emb, build_detector("background"), Gallery(emb.meta, threshold=0.9),
                              StreamConfig(min_observations=2, min_quality=0.1, infrared={"ir"}))
    assert pipeline._embed_inputs("ir") == {"modality": 1} and pipeline._embed_inputs("vis") == {"modality": 0}
    for t in range(12):
        for camera in ("vis", "ir"):
            pipeline.process(FramePacket(frame=_frame(t), camera_id=camera, frame_index=t, timestamp=t / 10))
    assert pipeline.crops_embedded > 0


@pytest.mark.slow  # exports a TMPA ResNet50 (about half a minute on the shared 2-core CPU)
def test_infrared_camera_crops_take_tmpa_infrared_path(tmp_path: Path) -> None:
    """The same with a real (untrained) TMPA graph: the infrared camera's crops reach it as
    modality 1, through the infrared stem and MFT's infrared-to-visible direction."""
    torch = pytest.importorskip("torch")
    from edge_reid.deploy.onnx_export import OnnxExporter
    from edge_reid.models import build_model
    from edge_reid.runtime import load_embedder

    torch.manual_seed(0)
    model = build_model("tmpa", num_classes=2, input_size=(32, 16), mft_stages=["layer4"]).eval()
    with torch.no_grad():
        model.infrared_stem[0].weight.mul_(-1.0)
        model.sites["layer4"].fuse[1].weight.fill_(0.3)
    path = OnnxExporter(simplify=False).export(model, model.meta("test"), tmp_path / "tmpa.onnx").path
    emb = load_embedder(path, "onnxruntime")
    assert emb.meta.model == "tmpa" and emb.meta.inputs == ("images", "modality")
    seen = []
    current = {"camera": ""}
    real_embed = emb.embed

    def recording_embed(crops, **inputs):  # the real graph runs; the call's camera and inputs are noted
        out = real_embed(crops, **inputs)
        seen.append((current["camera"], inputs.get("modality"), [c.copy() for c in crops], out))
        return out

    emb.embed = recording_embed
    pipeline = StreamPipeline(emb, build_detector("background"), Gallery(emb.meta, threshold=0.9),
                              StreamConfig(min_observations=2, min_quality=0.1, infrared={"ir"}))
    for t in range(12):
        for camera in ("vis", "ir"):
            current["camera"] = camera
            pipeline.process(FramePacket(frame=_frame(t), camera_id=camera, frame_index=t, timestamp=t / 10))
    assert pipeline.crops_embedded > 0 and {c for c, _, _, _ in seen} == {"vis", "ir"}
    for camera, modality, crops, out in seen:
        assert modality == (1 if camera == "ir" else 0)
        np.testing.assert_allclose(out, real_embed(crops, modality=modality), atol=1e-6)
        assert not np.allclose(out, real_embed(crops, modality=1 - modality), atol=1e-3)
