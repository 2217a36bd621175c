"""Graph simplification with onnxsim (constant folding, dead-node removal, shape cleanup).

Simplification is an optimisation, never a requirement: if onnxsim is missing, crashes or
cannot prove the result equivalent, the original graph is kept and a note is logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Tuple

if TYPE_CHECKING:  # pragma: no cover
    import onnx

log = logging.getLogger(__name__)


def simplify_onnx(model: "onnx.ModelProto") -> Tuple["onnx.ModelProto", bool]:
    """Return ``(simplified graph, True)``, or ``(model, False)`` with a logged note on failure."""
    try:
        import onnxsim
    except ImportError:
        log.info("onnxsim is not installed; keeping the unsimplified graph.")
        return model, False
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception as exc:  # onnxsim raises many types; any failure just skips the step
        log.info("onnxsim failed (%s: %s); keeping the unsimplified graph.", type(exc).__name__, str(exc)[:200])
        return model, False
    if not ok:
        log.info("onnxsim could not validate the simplified graph; keeping the unsimplified graph.")
        return model, False
    # onnxsim's recorded intermediate shapes can be wrong (seen: a rank-5 annotation after
    # stack+mean, which breaks ORT's Conv fusion); drop them and let runtimes re-infer.
    del simplified.graph.value_info[:]
    problem = _same_outputs(model, simplified)
    if problem:
        log.info("onnxsim changed the graph's behaviour (%s); keeping the unsimplified graph.", problem)
        return model, False
    # onnxsim keeps metadata_props, but be explicit: they are the artifact's identity.
    if not simplified.metadata_props and model.metadata_props:
        simplified.metadata_props.extend(model.metadata_props)
    return simplified, True


def _same_outputs(original: "onnx.ModelProto", simplified: "onnx.ModelProto", atol: float = 1e-5) -> str:
    """'' when both graphs load in ONNX Runtime and agree on a random batch of 2, else why not."""
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return ""
    outputs = []
    for graph in (original, simplified):
        try:
            sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
            feeds = {}
            for inp in sess.get_inputs():  # images, then any per-image int64 ids (zeros)
                shape = [2 if not isinstance(d, int) else d for d in inp.shape]
                feeds[inp.name] = (np.zeros(shape, dtype=np.int64) if "int64" in inp.type
                                   else np.random.default_rng(0).random(shape, dtype=np.float32))
            outputs.append(sess.run(None, feeds)[0])
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    if outputs[0].shape != outputs[1].shape or float(np.abs(outputs[0] - outputs[1]).max()) > atol:
        return "outputs differ"
    return ""
