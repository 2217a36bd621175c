"""TMPA through export and runtime: the ONNX graph takes the int64 modality input, matches
PyTorch on mixed batches, and quantizes to INT8 with the modality recorded in its metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import onnx
import pytest
import torch

from edge_reid.deploy.compat import check_tensorrt_compat
from edge_reid.deploy.int8 import Int8Quantizer, flavour_of
from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.deploy.parity import cosines
from edge_reid.metadata import ModelMeta
from edge_reid.models import build_model
from edge_reid.models.checkpoint import save_checkpoint
from edge_reid.runtime import load_embedder
from edge_reid.runtime.preprocess import preprocess_crops
from test_int8 import write_person_crops
from test_vi_export import assert_modality_routing

SIZE = (64, 32)


def person_crops(count: int, seed: int, folder: Path) -> List[np.ndarray]:
    """Synthetic-like BGR person crops (test_int8's renderer), read back."""
    return [cv2.imread(str(p)) for p in sorted(write_person_crops(folder, count, seed).glob("*.jpg"))]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("tmpa_deploy")
    torch.manual_seed(0)
    model = build_model("tmpa", num_classes=3, input_size=SIZE).eval()
    with torch.no_grad():  # make the stems differ and let the MFT sites change the map (untrained: identity)
        model.infrared_stem[0].weight.mul_(-1.0)
        for site in model.sites.values():
            site.fuse[1].weight.fill_(0.3)
    meta = model.meta("synthetic_vi")
    ckpt = save_checkpoint(root / "tmpa.pth", model, meta)
    fp32 = OnnxExporter(simplify=False).export(model, meta, root / "tmpa.onnx").path
    calib = preprocess_crops(person_crops(32, 0, root / "calib"), SIZE)
    int8 = Int8Quantizer().quantize(fp32, calib, {"cpu": root / "tmpa_int8_cpu.onnx"})["cpu"]
    return {"ckpt": ckpt, "fp32": fp32, "int8": int8, "root": root}


def _graph_inputs(path: Path) -> List[onnx.ValueInfoProto]:
    proto = onnx.load(str(path))
    inits = {t.name for t in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


@pytest.mark.slow  # exports and quantizes a ResNet50 with two MFT sites (about a minute on the shared 2-core CPU)
def test_onnx_takes_modality_and_matches_pytorch(artifacts: Dict[str, Path]) -> None:
    inputs = _graph_inputs(artifacts["fp32"])
    assert [i.name for i in inputs] == ["images", "modality"]
    assert inputs[1].type.tensor_type.elem_type == onnx.TensorProto.INT64
    report = check_tensorrt_compat(artifacts["fp32"])
    assert report.ok, report.problems
    ort_e, torch_e = load_embedder(artifacts["fp32"], threads=1), load_embedder(artifacts["ckpt"])
    assert ort_e.meta.model == "tmpa" and ort_e.meta.inputs == ("images", "modality")
    assert ort_e.meta.model_options["mft_stages"] == ["layer3", "layer4"]
    crops = person_crops(4, 1, artifacts["root"] / "eval4")
    vis, ir = assert_modality_routing(ort_e, torch_e, crops)
    np.testing.assert_allclose(ort_e.embed(crops[1:2], modality=1)[0], ir[1], atol=1e-5)  # one image alone


@pytest.mark.slow
def test_int8_keeps_the_modality_input_and_metadata(artifacts: Dict[str, Path]) -> None:
    proto = onnx.load(str(artifacts["int8"]))
    assert flavour_of(proto) == "cpu"
    assert [i.name for i in _graph_inputs(artifacts["int8"])] == ["images", "modality"]
    int8_e = load_embedder(artifacts["int8"], threads=1)
    assert int8_e.precision == "int8-cpu"
    assert int8_e.meta.inputs == ("images", "modality") and int8_e.meta.model == "tmpa"
    assert ModelMeta.from_dict(int8_e.meta.to_dict()).inputs == ("images", "modality")
    fp32_e = load_embedder(artifacts["fp32"], threads=1)
    crops = person_crops(12, 2, artifacts["root"] / "eval12")
    for modality in (0, 1):
        ref, got = fp32_e.embed(crops, modality=modality), int8_e.embed(crops, modality=modality)
        assert cosines(ref, got).min() >= 0.98, f"modality {modality}"
