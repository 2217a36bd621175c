"""Adapter from the format registry (:mod:`edge_reid.deploy.formats`) to the ONNX/TensorRT pipeline."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from edge_reid.errors import InvalidInputError


def build_onnx(cfg: Any, device: Optional[str] = None, say: Callable[[str], None] = print) -> Dict[str, Any]:
    """``--format onnx``: :func:`edge_reid.deploy.pipeline.run_build` (the device follows ``--backend``)."""
    from edge_reid.deploy.pipeline import run_build

    if device:
        raise InvalidInputError("--device applies to --format aoti; the ONNX build chooses its runtime with --backend.")
    return run_build(cfg, say)
