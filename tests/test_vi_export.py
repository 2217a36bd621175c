"""A two-stream model through export and runtime: the "modality" input end to end."""

from __future__ import annotations

from typing import Tuple

import numpy as np
import onnx
import pytest
import torch

from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.models import build_model
from edge_reid.models.checkpoint import save_checkpoint
from edge_reid.runtime import load_embedder

SIZE = (32, 16)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("vi_export")
    torch.manual_seed(0)
    model = build_model("agw", num_classes=3, input_size=SIZE).eval()
    with torch.no_grad():
        model.infrared_stem[0].weight.mul_(-1.0)  # make the two stems differ
    meta = model.meta("synthetic_vi")
    ckpt = save_checkpoint(root / "agw.pth", model, meta)
    onnx_path = OnnxExporter(simplify=False).export(model, meta, root / "agw.onnx").path
    return model, ckpt, onnx_path


def _crops(n: int = 4):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (int(rng.integers(40, 150)), int(rng.integers(20, 70)), 3), dtype=np.uint8)
            for _ in range(n)]


def test_meta_inputs_round_trip() -> None:
    meta = ModelMeta(model="agw", input_size=(8, 4), embedding_dim=2, num_ids=1, inputs=("images", "modality"))
    assert meta.to_dict()["inputs"] == ["images", "modality"]
    assert ModelMeta.from_json(meta.to_json()).inputs == ("images", "modality")
    old = {k: v for k, v in meta.to_dict().items() if k != "inputs"}
    assert ModelMeta.from_dict(old).inputs == ("images",)


def assert_modality_routing(ort_e, torch_e, crops) -> Tuple[np.ndarray, np.ndarray]:
    """ONNX Runtime and PyTorch agree on a mixed batch of 4 crops, and each crop takes its own modality's
    path (visible and infrared embeddings differ); returns the all-visible and all-infrared embeddings."""
    mixed = [0, 1, 1, 0]
    a, b = ort_e.embed(crops, modality=mixed), torch_e.embed(crops, modality=mixed)
    assert np.abs(a - b).max() < 1e-4
    vis, ir = ort_e.embed(crops, modality=0), ort_e.embed(crops, modality=1)
    assert np.abs(vis - ir).max() > 1e-3
    np.testing.assert_allclose(a[[0, 3]], vis[[0, 3]], atol=1e-5)
    np.testing.assert_allclose(a[[1, 2]], ir[[1, 2]], atol=1e-5)
    return vis, ir


@pytest.mark.slow  # exports a ResNet50 (about a minute on the shared 2-core CPU)
def test_onnx_graph_takes_modality_and_backends_agree(artifacts) -> None:
    model, ckpt, onnx_path = artifacts
    proto = onnx.load(str(onnx_path))
    inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    assert [i.name for i in inputs] == ["images", "modality"]
    assert inputs[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    ort_e, torch_e = load_embedder(onnx_path, threads=1), load_embedder(ckpt)
    assert ort_e.meta.inputs == ("images", "modality") == torch_e.meta.inputs
    crops = _crops()
    assert_modality_routing(ort_e, torch_e, crops)
    with pytest.raises(InvalidInputError, match="needs the input 'modality'"):
        ort_e.embed(crops)
    with pytest.raises(InvalidInputError, match="3 values for 4 crops"):
        torch_e.embed(crops, modality=[0, 1, 0])


def test_single_input_models_ignore_modality(tmp_path) -> None:
    model = build_model("mobilenetv2", num_classes=2, input_size=SIZE).eval()
    path = OnnxExporter(simplify=False).export(model, model.meta("x"), tmp_path / "m.onnx").path
    emb = load_embedder(path, threads=1)
    assert emb.meta.inputs == ("images",)
    crops = _crops(2)
    np.testing.assert_allclose(emb.embed(crops, modality=1), emb.embed(crops))
