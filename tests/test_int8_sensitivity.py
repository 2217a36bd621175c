"""--int8-keep-float auto: the sensitivity analysis finds the layer made hard to quantize."""

from __future__ import annotations

import csv
from pathlib import Path

import onnx
import pytest
import torch
from torch import nn

from edge_reid.deploy.int8 import Int8Quantizer, parse_float_rules
from edge_reid.deploy.int8_sensitivity import SensitivityAnalysis, auto_float_nodes
from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.deploy.parity import cosines
from edge_reid.metadata import ModelMeta
from edge_reid.runtime import load_embedder

from int8_tiny import SIZE, Tiny, conv_nodes, smooth_images


@pytest.fixture(scope="module")
def hard_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = Tiny().eval()
    model.add_outlier()
    meta = ModelMeta(model="tiny", input_size=SIZE, embedding_dim=16, num_ids=0)
    return OnnxExporter().export(model, meta, tmp_path_factory.mktemp("sens") / "fp32.onnx").path


def test_auto_keeps_only_the_outlier_layers_in_float(hard_model: Path, tmp_path: Path) -> None:
    calib = smooth_images(48, seed=0)
    names = conv_nodes(hard_model)
    hard = {names["c2"], names["c3"]}
    # quantizing everything (the old default without rules) fails the gate on this model
    probe = SensitivityAnalysis(hard_model, calib, tmp_path / "probe", flavours=("trt",))
    assert not probe.trial("all", "every layer", []).passed

    result = auto_float_nodes(hard_model, calib, tmp_path, say=lambda _: None)
    chosen = set(result.float_nodes)
    assert chosen and chosen <= hard  # the hard layers, nothing else
    assert {names["c1"], names["c4"], names["fc"]}.isdisjoint(chosen)

    rows = list(csv.DictReader(open(result.table)))
    groups = {r["subject"]: r for r in rows if r["level"] == "group"}
    assert len(groups) == 4  # Conv@32x16, Conv@16x8, Conv@8x4, Gemm
    # the outlier stage is the most sensitive group
    assert min(groups, key=lambda g: float(groups[g]["cos_min"])) == "Conv@16x8"

    # the chosen set, quantized for real, passes the gate on unseen crops in both flavours
    outs = Int8Quantizer(keep_float=parse_float_rules("auto")).quantize(
        hard_model, calib, {f: tmp_path / f"{f}.onnx" for f in ("trt", "cpu")}, float_nodes=result.float_nodes)
    crops = smooth_images(24, seed=1)
    ref = load_embedder(hard_model, "onnxruntime").embed(crops)
    for flavour, path in outs.items():
        assert cosines(ref, load_embedder(path, "onnxruntime").embed(crops)).min() >= 0.99, flavour
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["edge_reid.float_rules"] == "auto"
        assert set(props["edge_reid.float_node_names"].split(",")) == chosen
        graph = onnx.load(str(path)).graph
        dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        int8 = {n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.input[1] in dq_outputs}
        assert int8 == set(names.values()) - chosen, flavour  # the rest stays quantized


class TinyWithCameras(Tiny):
    """Tiny plus a per-camera embedding (a second graph input, as FusionReID's camera_ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.camera = nn.Embedding(3, 16)
        with torch.no_grad():
            self.camera.weight *= 1e-3  # small beside the image path, whose quantization error the gate sees

    def forward(self, x: torch.Tensor, camera_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(x) + self.camera(camera_ids)


def test_auto_feeds_the_extra_inputs_of_a_camera_aware_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyWithCameras().eval()
    model.add_outlier()
    meta = ModelMeta(model="tiny", input_size=SIZE, embedding_dim=16, num_ids=0, model_options={"num_cameras": 3},
                     inputs=("images", "camera_ids"))
    path = OnnxExporter().export(model, meta, tmp_path / "fp32.onnx").path
    result = auto_float_nodes(path, smooth_images(48, seed=0), tmp_path, say=lambda _: None)
    names = conv_nodes(path)
    assert result.float_nodes and set(result.float_nodes) <= {names["c2"], names["c3"]}
