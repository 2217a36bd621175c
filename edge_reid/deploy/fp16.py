"""FP16 variant: an FP16 graph with float32 inputs and outputs, so callers do not change.

TensorRT 11 takes precision from the graph (strongly typed networks), so the FP16 engine is
built from this graph; on TensorRT 10.x it is built with the FP16 flag from the same graph.

The final L2 normalisation (ReduceL2 / Clip / Expand / Div) stays in FP32: a sum of 2048
squared features overflows FP16's 65504 as soon as features exceed ~5.6 in magnitude, which
would turn embeddings into NaN/zero. The input normalisation (Sub/Div) also stays FP32 (cheap).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

from edge_reid.deploy.onnx_export import KEY_PRECISION, read_metadata, set_metadata
from edge_reid.errors import MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    import onnx

log = logging.getLogger(__name__)

#: Ops kept in FP32 in the FP16 graph (normalisations whose sums overflow FP16).
FP32_OPS: Sequence[str] = ("ReduceL2", "LpNormalization", "Clip", "Expand", "Div", "Sub")


class FP16Converter:
    """Turns an FP32 graph into an FP16 graph with float32 I/O (ONNX Runtime's converter)."""

    def __init__(self, keep_fp32_ops: Sequence[str] = FP32_OPS) -> None:
        self.keep_fp32_ops = list(keep_fp32_ops)

    def convert(self, model: "onnx.ModelProto") -> "onnx.ModelProto":
        """Return the FP16 graph; metadata is carried over with ``precision=fp16``."""
        try:
            from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
        except ImportError:
            raise MissingDependencyError(
                "FP16 conversion needs onnxruntime's converter; install it with 'pip install onnxruntime'."
            ) from None
        meta, props = read_metadata(model)
        block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(self.keep_fp32_ops))
        converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=block, disable_shape_infer=False)
        _drop_duplicate_nodes(converted)
        extra = {k: v for k, v in props.items() if k.startswith("edge_reid.") and k not in (KEY_PRECISION,)}
        extra = {k: v for k, v in extra.items() if k.count(".") == 1 and k.split(".", 1)[1] in ("opset",)}
        set_metadata(converted, meta, precision="fp16", **extra)
        return converted


def _drop_duplicate_nodes(model: "onnx.ModelProto") -> None:
    """Remove byte-identical nodes (the converter inserts one Cast per blocked consumer, same name)."""
    seen = set()
    kept = []
    for node in model.graph.node:
        key = node.SerializeToString()
        if key in seen:
            continue
        seen.add(key)
        kept.append(node)
    if len(kept) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(kept)


def to_fp16(model: "onnx.ModelProto") -> "onnx.ModelProto":
    """Shorthand for :meth:`FP16Converter.convert` with the default FP32 ops."""
    return FP16Converter().convert(model)
