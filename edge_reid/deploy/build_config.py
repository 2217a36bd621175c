"""What ``edge-reid build`` can be told: :class:`BuildConfig` (its defaults are the embedded default
build) and the parsers of the ``--batch`` and ``--precisions`` flags. Run by :mod:`edge_reid.deploy.pipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from edge_reid.deploy.int8 import AUTO_FLOAT
from edge_reid.errors import InvalidInputError


@dataclass
class BuildConfig:
    """Everything ``edge-reid build`` can be told (defaults = the embedded default)."""

    checkpoint: Optional[str] = None
    model: Optional[str] = None
    out: Optional[str] = None
    precisions: Tuple[str, ...] = ("fp32", "fp16", "int8")
    batch: Tuple[int, int, int] = (1, 8, 32)
    calib_dir: Optional[str] = None
    calib_split: Optional[str] = None  # "dataset:split", e.g. "synthetic:train"
    calib_random: bool = False
    calib_images: int = 256
    int8_keep_float: Tuple[str, ...] = (AUTO_FLOAT,)  # layer kinds INT8 keeps in float; auto: measured
    qat: bool = False  # also INT8 by quantization-aware fine-tuning (edge_reid.deploy.qat)
    qat_config: Optional[str] = None  # training config whose qat section to use (default: the checkpoint's)
    qat_settings: Dict[str, Any] = field(default_factory=dict)  # QATSettings fields set on top of that section (e.g. start="all")
    eval_dataset: Optional[str] = "synthetic"
    eval_limit: int = 400
    backend: str = "auto"  # auto | onnxruntime | tensorrt
    gates: Dict[str, float] = field(default_factory=dict)
    opset: int = 17
    threads: int = 0
    latency_iters: int = 10
    workspace_mb: int = 1024
    dla_core: Optional[int] = None


def parse_batch(text: str) -> Tuple[int, int, int]:
    """'1,8,32' -> (1, 8, 32); one number n -> (1, n, n)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InvalidInputError(f"--batch takes min,opt,max integers; got '{text}'.") from None
    if len(values) == 1:
        values = [1, values[0], values[0]]
    if len(values) != 3 or not 1 <= values[0] <= values[1] <= values[2]:
        raise InvalidInputError(f"--batch takes min,opt,max with 1 <= min <= opt <= max; got '{text}'.")
    return values[0], values[1], values[2]


def parse_precisions(text: str) -> Tuple[str, ...]:
    """'fp32,int8' -> ('fp32', 'int8'); fp32 is always built (every variant derives from it)."""
    values = [v.strip().lower() for v in text.split(",") if v.strip()]
    unknown = sorted(set(values) - {"fp32", "fp16", "int8"})
    if unknown:
        raise InvalidInputError(f"Unknown precision(s) {unknown}; choose from fp32, fp16, int8.")
    return tuple(["fp32"] + [v for v in ("fp16", "int8") if v in values])


__all__ = ["BuildConfig", "parse_batch", "parse_precisions"]
