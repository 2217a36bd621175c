"""INT8 Q/DQ: both flavours from one calibration, parity on synthetic-like crops, empty folder."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from edge_reid.cli import main
from edge_reid.deploy.compat import check_tensorrt_compat
from edge_reid.deploy.int8 import Int8Quantizer, calibration_from_folder, flavour_of
from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.deploy.parity import cosines
from edge_reid.errors import InvalidInputError
from edge_reid.models import build_model
from edge_reid.models.checkpoint import save_checkpoint
from edge_reid.runtime import load_embedder

SIZE = (64, 32)


def write_person_crops(folder: Path, count: int, seed: int) -> Path:
    """Synthetic-like BGR crops: a textured background and a coloured 'person' (head, torso, legs)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        h, w = 128, 64
        img = np.clip(rng.normal(rng.integers(60, 200), 25, (h, w, 3)), 0, 255).astype(np.uint8)
        img = cv2.GaussianBlur(img, (5, 5), 0)
        top, body = tuple(int(v) for v in rng.integers(0, 255, 3)), tuple(int(v) for v in rng.integers(0, 255, 3))
        cx = int(rng.integers(24, 40))
        cv2.circle(img, (cx, 18), 9, (140, 170, 200), -1)
        cv2.rectangle(img, (cx - 14, 28), (cx + 14, 72), top, -1)
        cv2.rectangle(img, (cx - 12, 72), (cx + 12, 122), body, -1)
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), img)
    return folder


@pytest.fixture(scope="module")
def int8_graphs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("int8")
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=4, input_size=SIZE).eval()
    fp32 = OnnxExporter().export(model, model.meta("test"), root / "fp32.onnx").path
    calib = calibration_from_folder(write_person_crops(root / "calib", 24, seed=0), SIZE)
    paths = Int8Quantizer().quantize(fp32, calib, {"trt": root / "trt.onnx", "cpu": root / "cpu.onnx"})
    return {"fp32": fp32, **paths, "eval": write_person_crops(root / "eval", 16, seed=1)}


def _zero_points(path: Path):
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return [inits[n.input[2]] for n in model.graph.node
            if n.op_type == "QuantizeLinear" and len(n.input) > 2 and n.input[2] in inits]


def test_flavours_are_recorded_and_follow_their_rules(int8_graphs: Dict[str, Path]) -> None:
    assert flavour_of(onnx.load(str(int8_graphs["trt"]))) == "trt"
    assert flavour_of(onnx.load(str(int8_graphs["cpu"]))) == "cpu"
    trt_zps = _zero_points(int8_graphs["trt"])
    assert trt_zps and all(z.dtype == np.int8 and not z.any() for z in trt_zps)
    assert all(z.dtype == np.uint8 for z in _zero_points(int8_graphs["cpu"]))
    assert check_tensorrt_compat(int8_graphs["trt"]).ok
    assert not check_tensorrt_compat(int8_graphs["cpu"]).ok  # asymmetric U8: TensorRT refuses it
    props = {p.key: p.value for p in onnx.load(str(int8_graphs["trt"])).metadata_props}
    assert props["edge_reid.float_rules"] == "high-res,pooled-gates" and int(props["edge_reid.float_nodes"]) > 0


def test_int8_cosine_to_fp32_on_unseen_crops(int8_graphs: Dict[str, Path]) -> None:
    crops = [cv2.imread(str(p)) for p in sorted(int8_graphs["eval"].glob("*.jpg"))]
    ref = load_embedder(int8_graphs["fp32"]).embed(crops)
    for flavour in ("trt", "cpu"):
        embedder = load_embedder(int8_graphs[flavour])
        assert embedder.precision == f"int8-{flavour}"
        assert cosines(ref, embedder.embed(crops)).min() >= 0.99


def test_empty_calibration_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="contains no images"):
        calibration_from_folder(tmp_path / "empty", SIZE)
    model = build_model("resnet50", num_classes=2, input_size=SIZE)
    ckpt = save_checkpoint(tmp_path / "m.pth", model, model.meta())
    code = main(["build", "--checkpoint", str(ckpt), "--calib-dir", str(tmp_path / "empty"),
                 "--eval-dataset", "none", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "contains no images" in err and err.count("\n") == 0
    assert not list((tmp_path / "out").glob("*.onnx"))


def _rules_graph() -> onnx.ModelProto:
    """stem conv (32x16 out) -> stride-8 conv (4x2) -> depthwise conv -> GAP -> 1x1 gate conv -> MatMul."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["images", "w_stem"], ["stem"], name="stem", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["stem", "w_down"], ["down"], name="down", kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Conv", ["down", "w_dw"], ["dw"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["dw"], ["pooled"], name="gap"),
        helper.make_node("Conv", ["pooled", "w_gate"], ["gate"], name="gate"),
        helper.make_node("Flatten", ["gate"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w_proj"], ["embeddings"], name="proj"),
    ]
    inits = [weight("w_stem", 8, 3, 3, 3), weight("w_down", 8, 8, 8, 8), weight("w_dw", 8, 1, 3, 3),
             weight("w_gate", 8, 8, 1, 1), weight("w_proj", 8, 4)]
    graph = helper.make_graph(nodes, "rules", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 16])],
                              [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_float_rules_select_their_layers() -> None:
    from edge_reid.deploy.int8 import DEFAULT_FLOAT_RULES, float_sensitive_nodes, parse_float_rules

    model = _rules_graph()
    onnx.checker.check_model(model)
    pick = lambda *rules: sorted(float_sensitive_nodes(model, (32, 16), rules=rules))  # noqa: E731
    assert pick("high-res") == ["stem"]
    assert pick("pooled-gates") == ["gate"]
    assert pick("depthwise") == ["dw"]
    assert pick("attention") == ["proj"]
    assert pick(*DEFAULT_FLOAT_RULES) == ["gate", "stem"] and pick() == []
    assert parse_float_rules("none") == () and parse_float_rules(" depthwise , attention ") == ("depthwise", "attention")
    with pytest.raises(InvalidInputError, match="Unknown INT8 float rule 'wide'"):
        parse_float_rules("depthwise,wide")


def test_unknown_float_rule_is_one_sentence(capsys) -> None:
    assert main(["build", "--int8-keep-float", "wide", "--model", "resnet50"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-reid: error: Unknown INT8 float rule 'wide'") and "\n" not in err


def _residual_graph() -> onnx.ModelProto:
    """conv -> (conv, identity) -> Add -> conv: one residual Add between quantized convolutions."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.normal(size=(4, c, 3, 3)).astype(np.float32), n)
             for n, c in (("w_a", 3), ("w_b", 4), ("w_c", 4))]
    nodes = [helper.make_node("Conv", ["images", "w_a"], ["a"], name="a", pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["a", "w_b"], ["b"], name="b", pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["a", "b"], ["sum"], name="add"),
             helper.make_node("Conv", ["sum", "w_c"], ["embeddings"], name="c", pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 8, 4])],
                              [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", 4, 8, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_residual_add_runs_as_qlinearadd_with_the_default_op_types(tmp_path: Path) -> None:
    """Conv outputs get Q/DQ, so a residual Add between convolutions already sits in DQ -> Add -> Q and ONNX
    Runtime fuses it into QLinearAdd without Add in the op types; listing Add (``op_types``) changes nothing."""
    import onnxruntime as ort

    from edge_reid.deploy.int8 import QUANTIZED_OP_TYPES, write_qdq

    src = tmp_path / "residual.onnx"
    onnx.save(_residual_graph(), str(src))
    calib = np.random.default_rng(0).random((8, 3, 8, 4), dtype=np.float32)
    for op_types in (QUANTIZED_OP_TYPES, (*QUANTIZED_OP_TYPES, "Add")):
        out = write_qdq(src, tmp_path / f"{len(op_types)}.onnx", calib, "cpu", [], tmp_path, calibrate_method="MinMax",
                        op_types=op_types)
        model = onnx.load(str(out))
        producer = {o: n for n in model.graph.node for o in n.output}
        add = next(n for n in model.graph.node if n.op_type == "Add")
        assert all(producer[i].op_type == "DequantizeLinear" for i in add.input)
        so = ort.SessionOptions()
        so.optimized_model_filepath = str(tmp_path / f"opt{len(op_types)}.onnx")
        ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
        assert "QLinearAdd" in ops and "Add" not in ops, ops
