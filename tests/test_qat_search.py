"""QAT from every layer INT8 (``qat: start: all``): fine-tuning beats post-training INT8 of every layer,
and the float set chosen afterwards on the fine-tuned graph keeps only the layers still needed."""

from __future__ import annotations

import csv
from pathlib import Path

import onnx
import pytest
import torch

from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.deploy.parity import cosines
from edge_reid.deploy.qat import QatModel, QatSettings, finetune
from edge_reid.deploy.qat_search import TABLE_NAME, qat_float_nodes
from edge_reid.metadata import ModelMeta
from edge_reid.runtime import load_embedder
from int8_tiny import SIZE, Tiny, conv_nodes, smooth_images


def _int8_layers(path: Path) -> set:
    graph = onnx.load(str(path)).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.input[1] in dq}


@pytest.mark.slow  # 33 s on the shared 2-core CPU (four calibrated exports and 48 fine-tuning steps)
def test_qat_from_every_layer_raises_the_worst_cosine_above_post_training(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Tiny().eval()
    model.add_outlier()  # one channel of c2's output 300x the others: post-training INT8 of every layer suffers
    meta = ModelMeta(model="tiny", input_size=SIZE, embedding_dim=16, num_ids=0)
    reference = OnnxExporter().export(model, meta, tmp_path / "fp32.onnx").path
    qat = QatModel(model, meta, smooth_images(48, 0), tmp_path / "work")
    assert not qat.float_nodes and len(qat.node_to_module) == 5  # every layer fake-quantized
    ptq = qat.export({"trt": tmp_path / "ptq_trt.onnx", "cpu": tmp_path / "ptq_cpu.onnx"})  # calibrated steps
    finetune(qat, model, smooth_images(256, 1), QatSettings(epochs=3, lr=1e-3, scale_lr=1e-2, batch_size=16),
             say=lambda _: None)
    tuned = qat.export({"trt": tmp_path / "qat_trt.onnx", "cpu": tmp_path / "qat_cpu.onnx"})
    x = smooth_images(64, 2)  # crops neither calibration nor fine-tuning saw
    ref = load_embedder(reference, "onnxruntime").embed(x)
    cos = {(k, f): cosines(ref, load_embedder(p[f], "onnxruntime").embed(x)) for k, p in (("ptq", ptq), ("qat", tuned))
           for f in ("trt", "cpu")}
    # the CPU flavour (U8 activations, the fast one) of every layer: QAT lifts the worst and the mean cosine
    assert cos["qat", "cpu"].min() > cos["ptq", "cpu"].min() + 0.005, (cos["ptq", "cpu"].min(), cos["qat", "cpu"].min())
    assert cos["qat", "cpu"].mean() > cos["ptq", "cpu"].mean()
    assert cos["qat", "trt"].min() >= 0.99  # and the TensorRT flavour stays above the gate
    for flavour in ("trt", "cpu"):
        assert _int8_layers(tuned[flavour]) == set(qat.node_to_module)


def test_float_set_chosen_after_qat_keeps_only_the_hard_layers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Tiny().eval()
    model.add_outlier()  # c2 -> c3 carries a channel 300x the others: no per-tensor step holds it
    meta = ModelMeta(model="tiny", input_size=SIZE, embedding_dim=16, num_ids=0)
    reference = OnnxExporter().export(model, meta, tmp_path / "fp32.onnx").path
    names = conv_nodes(reference)
    qat = QatModel(model, meta, smooth_images(48, 0), tmp_path / "work")
    finetune(qat, model, smooth_images(64, 1), QatSettings(epochs=1, lr=1e-4, batch_size=16), say=lambda _: None)
    outputs = {f: tmp_path / f"qat_{f}.onnx" for f in ("trt", "cpu")}
    result = qat_float_nodes(qat, reference, None, 0.99, 0, tmp_path, lambda _: None, outputs, {"qat_start": "all"})
    chosen = set(result.float_nodes)
    assert chosen and chosen <= {names["c2"], names["c3"]}  # the outlier's layers, nothing else
    assert set(qat.float_nodes) == chosen
    # a layer back in float has its original weights (every layer float would be the FP32 model); the
    # quantized ones keep their fine-tuned weights
    plain, module = qat.float_model(), {n: m for n, m in qat.node_to_module.items()}
    for node, name in module.items():
        same = torch.equal(plain.get_submodule(name).weight, model.get_submodule(name).weight)
        assert same == (node in chosen), name
    rows = list(csv.DictReader(open(tmp_path / TABLE_NAME)))
    assert rows[0]["level"] == "all" and rows[0]["meets_gate"] == "False"
    # exported as measured (learned steps, original weights in float): the float set as chosen, the rest
    # INT8, the metadata of an INT8 artifact, the gate met on unseen crops
    out = result.artifacts
    assert set(out) == {"trt", "cpu"}
    crops = smooth_images(24, 2)
    ref = load_embedder(reference, "onnxruntime").embed(crops)
    for flavour, path in out.items():
        assert _int8_layers(path) == set(qat.node_to_module) - chosen, flavour
        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert set(props["edge_reid.float_node_names"].split(",")) == chosen and props["edge_reid.qat_start"] == "all"
        assert props["edge_reid.int8_flavour"] == flavour and props["edge_reid.precision"] == "int8"
        assert cosines(ref, load_embedder(path, "onnxruntime").embed(crops)).min() >= 0.99, flavour
