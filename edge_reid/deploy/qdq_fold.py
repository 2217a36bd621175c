"""Offline clean-up of the CPU flavour's Q/DQ graph: a bounded activation between two quantizations.

ONNX Runtime's quantizer (with only Conv/Gemm/MatMul quantized) writes ``X -> Q1 -> DQ1 -> Clip ->
Q2 -> DQ2`` around a ReLU6 (MobileNetV2's activation). At run time ONNX Runtime removes the Clip
only after it has fused the convolutions, so a float dequantize -> quantize pair stays between every
two QLinearConv (measured on MobileNetV2 at 256x128, batch 8, one thread: those pairs took about
half of the INT8 graph's time, and every-layer INT8 ran at 1.0x FP32). Here, where Q2's whole
range lies inside the Clip's bounds (the Clip changes nothing that Q2 can represent), the chain
becomes ``X -> Q2 -> DQ2``: the Clip is done by Q2's saturation, and one rounding (Q1) is dropped,
so the result is Q2 applied to the exact value instead of to a rounded one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

_LIMITS = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


def _scalar(inits: dict, name: str, default: float) -> Any:
    if not name:
        return default
    value = inits.get(name)
    return None if value is None or value.size != 1 else value.reshape(())


def fold_bounded_requantize(model: Any) -> int:
    """Rewrite every foldable ``Q1 -> DQ1 -> Clip -> Q2`` into ``Q2`` on Q1's input (in place); how many."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    readers = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            readers[i].append(n)
    outputs = {o.name for o in graph.output}
    producer = {o: n for n in graph.node for o in n.output}
    dead, folded = set(), 0
    for q2 in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        clip = producer.get(q2.input[0])
        if clip is None or clip.op_type != "Clip" or len(readers[clip.output[0]]) != 1 or clip.output[0] in outputs:
            continue
        dq1 = producer.get(clip.input[0])
        q1 = producer.get(dq1.input[0]) if dq1 is not None and dq1.op_type == "DequantizeLinear" else None
        if q1 is None or q1.op_type != "QuantizeLinear" or len(readers[dq1.output[0]]) != 1 \
                or len(readers[q1.output[0]]) != 1 or {dq1.output[0], q1.output[0]} & outputs:
            continue
        scale, zero = _scalar(inits, q2.input[1], None), _scalar(inits, q2.input[2] if len(q2.input) > 2 else "", 0)
        lo = _scalar(inits, clip.input[1] if len(clip.input) > 1 else "", -np.inf)
        hi = _scalar(inits, clip.input[2] if len(clip.input) > 2 else "", np.inf)
        if scale is None or zero is None or lo is None or hi is None:
            continue
        qmin, qmax = _LIMITS.get(np.asarray(zero).dtype, (0, 255))
        # Q2(clip(v)) == Q2(v) for every v iff Q2 already saturates at both bounds
        if np.round(float(lo) / float(scale)) + int(zero) > qmin or np.round(float(hi) / float(scale)) + int(zero) < qmax:
            continue
        q2.input[0] = q1.input[0]
        dead.update({id(q1), id(dq1), id(clip)})
        folded += 1
    keep = [n for n in graph.node if id(n) not in dead]
    del graph.node[:]
    graph.node.extend(keep)
    return folded
