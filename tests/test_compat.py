"""TensorRT parser compatibility without a GPU: operators per opset and Q/DQ rules."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from edge_reid.deploy.compat import TRT_SUPPORTED_OPS, check_operators, check_qdq, check_tensorrt_compat
from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.errors import EdgeReidError
from edge_reid.models import MODELS, build_model


#: too large for the default suite (FusionReID: 173 M parameters, ~17 s to export even on an idle 2-core CPU)
SLOW_MODELS = {"fusionreid", "tmpa"}  # tmpa: a ResNet50 with two MFT sites, ~35 s on the shared CPU (test_tmpa_deploy covers it)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_MODELS else n
                                  for n in MODELS.names()])
def test_every_registry_model_exports_a_tensorrt_compatible_graph(name: str) -> None:
    torch.manual_seed(0)
    try:
        model = build_model(name, num_classes=4, input_size=(64, 32)).eval()
    except EdgeReidError as exc:
        pytest.skip(f"{name} cannot be built with default options: {exc}")
    proto, _ = OnnxExporter().to_proto(model, model.meta())
    report = check_tensorrt_compat(proto)
    assert report.ok, report.problems
    assert set(report.op_counts) <= TRT_SUPPORTED_OPS


def _qdq_conv_graph(act_zero_point: int, act_type: int, weight_axis: int = 0, opset: int = 17) -> onnx.ModelProto:
    """x -> Q -> DQ -> Conv(DQ(int8 weights)) -> y."""
    w = np.random.default_rng(0).integers(-127, 127, size=(4, 3, 3, 3)).astype(np.int8)
    np_act = np.int8 if act_type == TensorProto.INT8 else np.uint8
    inits = [
        numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
        numpy_helper.from_array(np.array(act_zero_point, np_act), "x_zp"),
        numpy_helper.from_array(w, "w_q"),
        numpy_helper.from_array(np.full(4, 0.01, np.float32), "w_scale"),
        numpy_helper.from_array(np.zeros(4, np.int8), "w_zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="q_x"),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], name="dq_w", axis=weight_axis),
        helper.make_node("Conv", ["x_dq", "w_dq"], ["y"], name="conv", pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_symmetric_int8_qdq_graph_passes() -> None:
    assert check_tensorrt_compat(_qdq_conv_graph(0, TensorProto.INT8)).ok


def test_asymmetric_qdq_graph_is_rejected() -> None:
    report = check_tensorrt_compat(_qdq_conv_graph(128, TensorProto.UINT8))
    assert not report.ok
    assert any("non-zero zero point" in p for p in report.problems)
    assert any("uint8" in p for p in report.problems)
    with pytest.raises(EdgeReidError, match="not TensorRT 10.3 compatible"):
        report.raise_if_failed()


def test_per_channel_weights_on_wrong_axis_are_rejected() -> None:
    problems = check_qdq(_qdq_conv_graph(0, TensorProto.INT8, weight_axis=1))
    assert any("axis 1" in p for p in problems)


def test_unsupported_operator_and_opset_are_reported() -> None:
    graph = helper.make_graph([helper.make_node("Unique", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    problems = check_operators(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)]), "10.3")
    assert any("Unique" in p for p in problems)
    assert any("opset 22" in p for p in problems)
    assert not any("opset" in p for p in check_operators(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)]), "10.15"))
