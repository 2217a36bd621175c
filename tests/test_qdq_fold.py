"""The CPU flavour folds ``Q -> DQ -> Clip -> Q`` (ReLU6 between two INT8 convolutions) only when exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from edge_reid.deploy.int8 import prepare_for_quantization, write_qdq
from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.deploy.parity import cosines
from edge_reid.deploy.qdq_fold import fold_bounded_requantize
from edge_reid.metadata import ModelMeta
from edge_reid.runtime import load_embedder

SIZE = (32, 16)


class Relu6Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 16, 3, 2, 1), nn.Conv2d(16, 16, 3, 1, 1)
        self.c, self.fc = nn.Conv2d(16, 32, 3, 2, 1), nn.Linear(32, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.relu6(self.a(x) * 4)
        x = nn.functional.relu6(self.c(nn.functional.relu6(self.b(x) * 4)))
        return self.fc(x.mean(dim=(2, 3)))


def _graph(tmp_path: Path, overrides=None) -> Path:
    torch.manual_seed(0)
    meta = ModelMeta(model="relu6", input_size=SIZE, embedding_dim=8, num_ids=0)
    fp32 = OnnxExporter().export(Relu6Net().eval(), meta, tmp_path / "fp32.onnx").path
    prepared = prepare_for_quantization(fp32, tmp_path / "prepared.onnx")
    calib = np.random.default_rng(0).normal(size=(32, 3, *SIZE)).astype(np.float32)
    name = "over" if overrides else "plain"
    return fp32, write_qdq(prepared, tmp_path / f"{name}.onnx", calib, "cpu", [], tmp_path, overrides=overrides)


def test_relu6_between_int8_convs_is_folded_into_the_next_quantization(tmp_path: Path) -> None:
    fp32, path = _graph(tmp_path)
    graph = onnx.load(str(path)).graph
    producer = {o: n for n in graph.node for o in n.output}
    clips = [n for n in graph.node if n.op_type == "Clip"]
    # the two ReLU6 that feed a quantized conv are folded; the last one feeds the float pooling and stays
    assert len(clips) == 1 and producer[clips[0].input[0]].op_type == "DequantizeLinear"
    assert {n.op_type for n in graph.node if clips[0].output[0] in n.input} == {"ReduceMean"}
    # no dequantize -> quantize round trip is left: every Q reads a float producer (a Conv or the input)
    assert all(producer.get(n.input[0]) is None or producer[n.input[0]].op_type != "DequantizeLinear"
               for n in graph.node if n.op_type == "QuantizeLinear")
    x = np.random.default_rng(1).normal(size=(16, 3, *SIZE)).astype(np.float32)
    cos = cosines(load_embedder(fp32, "onnxruntime").embed(x), load_embedder(path, "onnxruntime").embed(x))
    assert cos.min() > 0.99
    assert fold_bounded_requantize(onnx.load(str(path))) == 0  # nothing left to fold


def test_a_quantization_wider_than_the_clip_keeps_the_clip(tmp_path: Path) -> None:
    _, plain = _graph(tmp_path)
    clips = [n for n in onnx.load(str(tmp_path / "prepared.onnx")).graph.node if n.op_type == "Clip"]
    # a step whose U8 range (255 steps from 0) reaches 12, beyond ReLU6's bound: folding would lose the bound
    wide = {c.output[0]: [{"scale": np.array(12 / 255, dtype=np.float32), "zero_point": np.array(0, dtype=np.uint8)}]
            for c in clips}
    _, path = _graph(tmp_path, wide)
    kept = [n for n in onnx.load(str(path)).graph.node if n.op_type == "Clip"]
    assert len(kept) == len(clips) == 3
