"""Issue 18 item 10: tampered model metadata (ONNX metadata, engine side files) is refused at load
with one sentence naming the bad field, instead of crashing or surfacing mid-stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ONNX_METADATA_KEY, ModelMeta

GOOD = ModelMeta(model="tiny_colour", input_size=(32, 16), embedding_dim=24, num_ids=0, dataset="test")

BAD_FIELDS = [
    ("input_size", "abc"), ("input_size", None), ("input_size", [-1, 32]), ("input_size", [32, 16, 3]),
    ("input_size", ["32", "16"]), ("embedding_dim", -5), ("embedding_dim", "24"), ("embedding_dim", True),
    ("num_ids", -1), ("num_ids", 2.5), ("std", [0.2, 0.0, 0.2]), ("mean", [0.5, "x", 0.5]),
    ("mean", [0.5, 0.5]), ("model", 7), ("model", ""), ("model_options", []),
    ("inputs", ["camera_ids"]), ("inputs", ["images", "depth"]), ("inputs", ["images", "modality", "modality"]),
    ("inputs", "images"),
]


def _tiny_onnx(path: Path, meta_json: str) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Flatten", ["pooled"], ["embeddings"], axis=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 16])],
                              [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", 24])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, meta_json
    onnx.save(proto, str(path))
    return path


@pytest.mark.parametrize("key,value", BAD_FIELDS)
def test_from_dict_refuses_bad_types_and_ranges(key, value):
    data = {**GOOD.to_dict(), key: value}
    with pytest.raises(InvalidInputError, match=f"invalid '{key}'"):
        ModelMeta.from_dict(data, source="ONNX model x.onnx")


def test_inputs_field_round_trips_and_defaults():
    meta = ModelMeta(model="fusionreid", input_size=(256, 128), embedding_dim=768, num_ids=3,
                     inputs=("images", "camera_ids"))
    assert meta.to_dict()["inputs"] == ["images", "camera_ids"]
    assert ModelMeta.from_json(meta.to_json()) == meta
    legacy = {k: v for k, v in GOOD.to_dict().items() if k != "inputs"}
    assert ModelMeta.from_dict(legacy).inputs == ("images",)


@pytest.mark.parametrize("key,value", [("input_size", "abc"), ("input_size", [-1, 32]), ("embedding_dim", -5),
                                       ("embedding_dim", 8), ("input_size", [64, 32])])
def test_tampered_onnx_metadata_is_refused_when_loading(tmp_path, key, value):
    """Also a type-valid but wrong value: the graph's static shapes disagree with the metadata."""
    from edge_reid.runtime import load_embedder

    path = _tiny_onnx(tmp_path / "m.onnx", json.dumps({**GOOD.to_dict(), key: value}))
    with pytest.raises(InvalidInputError, match=key.split("_")[0] if key == "input_size" else "embedding|-d"):
        load_embedder(path, "onnxruntime")
    ok = load_embedder(_tiny_onnx(tmp_path / "ok.onnx", GOOD.to_json()), "onnxruntime")
    assert ok.meta == GOOD


def test_tampered_engine_side_file_is_refused(tmp_path):
    from edge_reid.deploy.engine_meta import ENGINE_FORMAT, read_side_file, side_file

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not read before the side file is checked")
    base = {"format": ENGINE_FORMAT, "tensorrt_version": "10.0", "gpu_name": "x", "compute_capability": "8.7",
            "precision": "fp16", "profile": {"min": 1, "opt": 8, "max": 32}, "source_onnx_sha256": "0" * 64}
    side_file(engine).write_text(json.dumps({**base, "meta": {**GOOD.to_dict(), "input_size": None}}))
    with pytest.raises(InvalidInputError, match="engine side file has an invalid 'input_size'"):
        read_side_file(engine)
    side_file(engine).write_text(json.dumps({**base, "meta": GOOD.to_dict()}))
    assert read_side_file(engine).model_meta() == GOOD
