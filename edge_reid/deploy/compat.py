"""Will TensorRT's ONNX parser take this graph? Checked on any machine, without a GPU.

Two checks:

1. Operators: every node's op type is in the ONNX-TensorRT parser's supported-operator list
   (``docs/operators.md`` of onnx/onnx-tensorrt, TensorRT 10.x), is defined by ONNX at the
   graph's opset, and the opset lies in the parser's range for the targeted TensorRT version.
2. Q/DQ rules of explicit quantization: QuantizeLinear / DequantizeLinear carry INT8 data with
   zero point 0 (symmetric), positive constant scales, per-tensor scales on activations and
   per-tensor or per-channel (axis 0, one scale per output channel) scales on Conv weights;
   biases are not quantized (an INT32 DequantizeLinear is rejected by the parser).

The list below is transcribed from the operator support matrix (only rows marked Y);
restrictions that depend on values (e.g. ``axes`` must be constant) are not modelled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, FrozenSet, List, Optional, Tuple, Union

import numpy as np

from edge_reid.errors import EdgeReidError

if TYPE_CHECKING:  # pragma: no cover
    import onnx

#: Operators the ONNX-TensorRT parser supports (TensorRT 10.x operator support matrix).
TRT_SUPPORTED_OPS: FrozenSet[str] = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos
Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand
EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool
GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow
HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN
LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool
MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not
OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform
RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean
ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization
RNN RoiAlign RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape
Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub
Sum Tan Tanh TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

#: Operators the matrix marks N (listed so the error can say "unsupported" rather than "unknown").
TRT_UNSUPPORTED_OPS: FrozenSet[str] = frozenset("""
AffineGrid Bernoulli BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Col2Im CenterCropPad Compress
ConcatFromSequence ConvInteger DFT Det DynamicQuantizeLinear ImageDecoder MatMulInteger MaxRoiPool
MaxUnpool MelWeightMatrix Multinomial NegativeLogLikelihoodLoss Optional OptionalGetElement
OptionalHasElement QLinearConv QLinearMatMul RegexFullMatch SequenceAt SequenceConstruct SequenceEmpty
SequenceErase SequenceInsert SequenceLength SequenceMap SoftmaxCrossEntropyLoss SplitToSequence
StringConcat StringNormalizer StringSplit TfIdfVectorizer Unique
""".split())

#: Operators added to the parser after TensorRT 10.3 (JetPack 6): not parsed there.
NEWER_THAN_10_3: FrozenSet[str] = frozenset({"Attention", "RMSNormalization", "RotaryEmbedding", "TensorScatter"})

#: Inclusive ONNX opset range the parser accepts, per TensorRT release (from the matrix headers).
TRT_OPSET_RANGE: Dict[str, Tuple[int, int]] = {
    "8.6": (9, 17),   # JetPack 5
    "10.0": (9, 20),
    "10.3": (9, 20),  # JetPack 6
    "10.15": (9, 24),
    "11": (9, 24),
}
DEFAULT_TARGET = "10.3"


@dataclass
class CompatReport:
    """The outcome of a compatibility check: ``ok`` or a list of one-line problems."""

    target: str
    opset: int
    op_counts: Dict[str, int]
    problems: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_failed(self, name: str = "The graph") -> None:
        if self.problems:
            shown = "; ".join(self.problems[:5]) + (f"; and {len(self.problems) - 5} more" if len(self.problems) > 5 else "")
            raise EdgeReidError(f"{name} is not TensorRT {self.target} compatible: {shown}.")


def _default_opset(model: "onnx.ModelProto") -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def _constants(model: "onnx.ModelProto") -> Dict[str, np.ndarray]:
    """Initializers and Constant-node outputs by name, as numpy arrays."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _axis(node: "onnx.NodeProto") -> int:
    for attr in node.attribute:
        if attr.name == "axis":
            return int(attr.i)
    return 1  # ONNX default for QuantizeLinear / DequantizeLinear


def check_operators(model: "onnx.ModelProto", target: str = DEFAULT_TARGET) -> List[str]:
    """Problems with the graph's opset and operators for TensorRT ``target``."""
    import onnx

    problems: List[str] = []
    opset = _default_opset(model)
    low, high = TRT_OPSET_RANGE.get(target, TRT_OPSET_RANGE[DEFAULT_TARGET])
    if not low <= opset <= high:
        problems.append(f"opset {opset} is outside TensorRT {target}'s parser range {low}-{high}")
    for op in sorted({(n.domain, n.op_type) for n in model.graph.node}):
        domain, op_type = op
        if domain not in ("", "ai.onnx"):
            problems.append(f"operator {domain}::{op_type} is not a standard ONNX operator (needs a TensorRT plugin)")
            continue
        if op_type not in TRT_SUPPORTED_OPS:
            why = "marked unsupported" if op_type in TRT_UNSUPPORTED_OPS else "not in the supported list"
            problems.append(f"operator {op_type} is {why} by TensorRT's ONNX parser")
            continue
        if target in ("8.6", "10.0", "10.3") and op_type in NEWER_THAN_10_3:
            problems.append(f"operator {op_type} needs a TensorRT newer than {target}")
        try:
            onnx.defs.get_schema(op_type, opset, "")
        except Exception:
            problems.append(f"operator {op_type} is not defined at opset {opset}")
    return problems


def check_qdq(model: "onnx.ModelProto") -> List[str]:
    """Problems with Q/DQ nodes under TensorRT's explicit-quantization rules."""
    consts = _constants(model)
    consumers: Dict[str, List[Tuple["onnx.NodeProto", int]]] = {}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    problems: List[str] = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        label = f"{node.op_type} '{node.name or node.output[0]}'"
        scale_name = node.input[1] if len(node.input) > 1 else ""
        zp_name = node.input[2] if len(node.input) > 2 else ""
        scale = consts.get(scale_name)
        if scale is None:
            problems.append(f"{label} has a non-constant scale")
            continue
        if not np.all(scale > 0):
            problems.append(f"{label} has a non-positive scale")
        if zp_name:
            zp = consts.get(zp_name)
            if zp is None:
                problems.append(f"{label} has a non-constant zero point")
            else:
                if zp.dtype != np.int8:
                    problems.append(f"{label} uses {zp.dtype} data; TensorRT needs signed INT8")
                if np.any(zp != 0):
                    problems.append(f"{label} has a non-zero zero point (asymmetric); TensorRT needs zero point 0")
        if node.op_type == "DequantizeLinear" and node.input[0] in consts:
            data = consts[node.input[0]]
            if data.dtype != np.int8:
                problems.append(f"{label} dequantizes {data.dtype} constants (a quantized bias?); TensorRT needs INT8")
            feeds_weight = any(c.op_type in ("Conv", "ConvTranspose") and idx == 1
                               for c, idx in consumers.get(node.output[0], []))
            if feeds_weight and scale.size > 1:
                if _axis(node) not in (0, -data.ndim) or scale.size != data.shape[0]:
                    problems.append(f"{label} quantizes Conv weights per channel on axis {_axis(node)}; "
                                    "TensorRT needs axis 0 with one scale per output channel")
        elif scale.size > 1:
            problems.append(f"{label} quantizes an activation per channel; TensorRT needs a per-tensor scale")
    return problems


def check_tensorrt_compat(model: Union["onnx.ModelProto", str, Path], target: str = DEFAULT_TARGET) -> CompatReport:
    """Check operators, opset and Q/DQ rules of ``model`` (a graph or a path) for TensorRT ``target``."""
    if not isinstance(model, (str, Path)):
        proto = model
    else:
        from edge_reid.deploy.onnx_export import load_onnx

        proto = load_onnx(model)
    report = CompatReport(target=target, opset=_default_opset(proto),
                          op_counts=dict(Counter(n.op_type for n in proto.graph.node)))
    report.problems.extend(check_operators(proto, target))
    report.problems.extend(check_qdq(proto))
    return report


def supported_ops(target: Optional[str] = None) -> List[str]:
    """The supported operator names for ``target`` (default: the newest list)."""
    ops = set(TRT_SUPPORTED_OPS)
    if target in ("8.6", "10.0", "10.3"):
        ops -= NEWER_THAN_10_3
    return sorted(ops)
