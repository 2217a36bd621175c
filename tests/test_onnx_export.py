"""ONNX export: parity with PyTorch for every registry model, metadata, FP16, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edge_reid.cli import main
from edge_reid.deploy.fp16 import to_fp16
from edge_reid.deploy.onnx_export import KEY_PRECISION, OnnxExporter, load_onnx, read_metadata, save_onnx
from edge_reid.deploy.parity import cosines
from edge_reid.metadata import ONNX_METADATA_KEY
from edge_reid.models import MODELS, build_model
from edge_reid.models.checkpoint import save_checkpoint
from edge_reid.runtime.inputs import example_ids

SIZE = (64, 32)


def _model(name: str):
    """A registry model at the small test size; models that need extra options are skipped."""
    from edge_reid.errors import InvalidInputError

    torch.manual_seed(0)
    try:
        return build_model(name, num_classes=5, input_size=SIZE).eval()
    except InvalidInputError as exc:
        pytest.skip(f"{name} cannot be built with default options: {exc}")


#: too large for the default suite on a 2-core CPU (FusionReID: 173 M parameters, minutes to export)
SLOW_MODELS = {"fusionreid", "tmpa"}  # tmpa: a ResNet50 with two MFT sites, ~35 s on the shared CPU (test_tmpa_deploy covers it)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_MODELS else n
                                  for n in MODELS.names()])
def test_onnxruntime_matches_pytorch_for_every_model(name: str, tmp_path: Path) -> None:
    model = _model(name)
    meta = model.meta("test")
    path = OnnxExporter().export(model, meta, tmp_path / "m.onnx").path
    x = np.random.default_rng(1).random((3, 3, *SIZE), dtype=np.float32)

    def feeds(batch: np.ndarray) -> dict:  # images, then per-image ids of models that take them (camera_ids)
        return {"images": batch, **example_ids(meta, len(batch))}

    with torch.no_grad():
        ref = model(torch.from_numpy(x), **{k: torch.from_numpy(v) for k, v in example_ids(meta, 3).items()}).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == list(meta.inputs) and [o.name for o in sess.get_outputs()] == ["embeddings"]
    got = sess.run(None, feeds(x))[0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # the batch axis is dynamic: one and five crops run through the same file
    assert sess.run(None, feeds(x[:1]))[0].shape[0] == 1
    assert sess.run(None, feeds(np.concatenate([x, x[:2]])))[0].shape[0] == 5


def test_metadata_round_trip_and_single_file(tmp_path: Path) -> None:
    model = _model("resnet50")
    meta = model.meta("synthetic")
    path = OnnxExporter().export(model, meta, tmp_path / "m.onnx").path
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no external data, no temp left over
    proto = onnx.load(str(path))
    read, props = read_metadata(proto)
    assert read.to_json() == meta.to_json() and props[KEY_PRECISION] == "fp32"
    assert json.loads(props[ONNX_METADATA_KEY])["input_size"] == list(SIZE)
    assert proto.opset_import[0].version == 17


def test_fp16_graph_keeps_float32_io_and_cosine(tmp_path: Path) -> None:
    model = _model("resnet50")
    fp32 = OnnxExporter().export(model, model.meta(), tmp_path / "fp32.onnx").path
    fp16 = save_onnx(to_fp16(load_onnx(fp32)), tmp_path / "fp16.onnx")
    sess16 = ort.InferenceSession(str(fp16), providers=["CPUExecutionProvider"])
    assert sess16.get_inputs()[0].type == "tensor(float)" and sess16.get_outputs()[0].type == "tensor(float)"
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in load_onnx(fp16).graph.initializer)
    x = np.random.default_rng(2).random((8, 3, *SIZE), dtype=np.float32)
    ref = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    got = sess16.run(None, {"images": x})[0]
    assert cosines(ref, got).min() >= 0.999
    assert read_metadata(load_onnx(fp16))[1][KEY_PRECISION] == "fp16"


def test_cli_export_writes_onnx_and_rejects_truncated_checkpoint(tmp_path: Path, capsys) -> None:
    model = _model("resnet50")
    ckpt = save_checkpoint(tmp_path / "m.pth", model, model.meta("test"))
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "max abs diff" in capsys.readouterr().out and (tmp_path / "m.onnx").is_file()
    bad = tmp_path / "bad.pth"
    bad.write_bytes(ckpt.read_bytes()[:1000])
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "bad.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "corrupt or truncated" in err and err.count("\n") == 0
    assert not (tmp_path / "bad.onnx").exists()


def test_corrupt_onnx_is_one_sentence(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 10)
    from edge_reid.errors import InvalidInputError
    from edge_reid.runtime import load_embedder

    with pytest.raises(InvalidInputError, match="not a loadable ONNX model"):
        load_embedder(bad)
    with pytest.raises(InvalidInputError, match="not a readable ONNX model"):
        load_onnx(bad)
