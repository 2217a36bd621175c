"""The formats ``edge-reid build --format NAME`` writes: a registry with what each one supports.

Each format names the function that builds it (``module:function``, imported only when chosen,
called as ``build(cfg: BuildConfig, device: Optional[str], say)``) and the facts shown in
``edge-reid build --help`` and in the README.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from edge_reid.errors import InvalidInputError


@dataclass(frozen=True)
class ExportFormat:
    """One deployable format and what it supports."""

    name: str
    files: str
    precisions_cpu: Tuple[str, ...]
    precisions_gpu: Tuple[str, ...]
    runs_on: str
    needs: str
    builder: str  # "module:function"

    def default_precisions(self, cuda: bool) -> Tuple[str, ...]:
        return self.precisions_gpu if cuda else self.precisions_cpu

    def build(self, cfg: Any, device: Optional[str] = None, say: Callable[[str], None] = print) -> Dict[str, Any]:
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)(cfg, device=device, say=say)


FORMATS: Dict[str, ExportFormat] = {
    "onnx": ExportFormat("onnx", "model_fp32/fp16/int8_{trt,cpu}.onnx (+ .engine with TensorRT)",
                         ("fp32", "fp16", "int8"), ("fp32", "fp16", "int8"),
                         "onnxruntime (CPU/CUDA), TensorRT engines on the GPU they were built on",
                         "onnx, onnxruntime; tensorrt for engines", "edge_reid.deploy.pipeline_formats:build_onnx"),
    "aoti": ExportFormat("aoti", "model_aoti_{cpu,cuda}_{precision}.pt2 (AOTInductor package)",
                         ("fp32",), ("fp32", "fp16", "bf16"),
                         "the aoti backend (PyTorch, no model code) on the device it was compiled for",
                         "torch (a C++ compiler at build time)", "edge_reid.deploy.aoti_build:build_aoti"),
}


def get_format(name: str) -> ExportFormat:
    """The format called ``name``; an unknown one is one sentence naming the known ones."""
    if name not in FORMATS:
        raise InvalidInputError(f"Unknown format '{name}'; choose from {', '.join(FORMATS)}.")
    return FORMATS[name]


def formats_table() -> str:
    """A plain-text table of every format (for ``--help``)."""
    rows = [("format", "files", "precisions (CPU / GPU)", "runs on", "needs")]
    rows += [(f.name, f.files, f"{','.join(f.precisions_cpu)} / {','.join(f.precisions_gpu)}", f.runs_on, f.needs)
             for f in FORMATS.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
