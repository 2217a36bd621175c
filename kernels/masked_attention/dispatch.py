"""Which implementation computes masked-channel attention for a given call.

Four correct paths compute the same Y = softmax(scale (X*M)(X*M)^T) X:

* ``"triton"``: the custom op ``edge_reid::masked_channel_attention`` (Triton kernels on CUDA and
  under ``TRITON_INTERPRET=1``; inside the op, the PyTorch reference elsewhere);
* ``"sdpa"``: PyTorch's ``scaled_dot_product_attention(Z, Z, X)`` with Z = X * M (B x 1 x N x C;
  flash / cuDNN for half precision and head dim <= 256, the memory-efficient backend for head
  dims divisible by 8 incl. float32); autograd gives dZ = dQ + dK, so dX and dM follow;
* ``"reference"``: the plain PyTorch definition (materialises the N x N matrix; cuBLAS GEMMs);
* ``"compiled"``: ``torch.compile`` of the reference.

:func:`pick_path` decides. ``path=`` on the op, or ``EDGE_REID_ATTENTION_PATH``, forces one. On
the CPU (and wherever timing cannot run: inside torch.compile tracing or a CUDA graph capture)
the static :data:`RULES` decide; on CUDA the first call at a new shape class times every
applicable path on the call's inputs and keeps the fastest (``dispatch_timing``: disk cache keyed
by GPU name and torch/triton versions). ``EDGE_REID_ATTENTION_TIMING=0`` turns the timing off (the
rules then decide on CUDA too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from edge_reid.errors import InvalidInputError

PATHS: Tuple[str, ...] = ("triton", "sdpa", "reference", "compiled")
HALF = (torch.float16, torch.bfloat16)
ENV = "EDGE_REID_ATTENTION_PATH"
TIMING_ENV = "EDGE_REID_ATTENTION_TIMING"


@dataclass(frozen=True)
class Rule:
    """Send inputs matching every given condition to ``path`` (None = any)."""

    path: str
    why: str
    device: Optional[str] = None
    dtypes: Optional[Tuple[torch.dtype, ...]] = None
    max_channels: Optional[int] = None
    channel_multiple: Optional[int] = None
    max_matrix_bytes: Optional[int] = None  # B * N * N * element size of the reference's logits

    def matches(self, shape: Tuple[int, int, int], dtype: torch.dtype, device: str) -> bool:
        b, n, c = shape
        return ((self.device is None or device == self.device)
                and (self.dtypes is None or dtype in self.dtypes)
                and (self.max_channels is None or c <= self.max_channels)
                and (self.channel_multiple is None or c % self.channel_multiple == 0)
                and (self.max_matrix_bytes is None
                     or b * n * n * torch.finfo(dtype).bits // 8 <= self.max_matrix_bytes))


#: The static table (first match wins): the CPU, and CUDA calls that cannot be timed. Its CUDA
#: rows follow kernels-gpu.md's H200 analysis of the old kernels and are unmeasured for the
#: one-tile kernels; the timed choice replaces them wherever it can run.
RULES: Tuple[Rule, ...] = (
    Rule("triton", "CPU: the custom op (interpreter kernels under TRITON_INTERPRET=1, else the reference)",
         device="cpu"),
    Rule("sdpa", "half precision, C <= 256: flash / cuDNN attention", device="cuda", dtypes=HALF, max_channels=256),
    Rule("reference", "float32, small N x N matrix: a few cuBLAS GEMMs beat IEEE-dot kernels",
         device="cuda", dtypes=(torch.float32,), max_matrix_bytes=64 * 2**20),
    Rule("sdpa", "float32 or C > 256 with C divisible by 8: the memory-efficient backend, O(N C) memory",
         device="cuda", channel_multiple=8),
    Rule("triton", "everything else (ragged C): the Triton kernels, O(N C) memory"),
)


def check_path(path: str) -> str:
    if path not in PATHS:
        raise InvalidInputError(f"Unknown attention path {path!r}; choose one of {', '.join(PATHS)}.")
    return path


def forced_path() -> Optional[str]:
    """The path ``EDGE_REID_ATTENTION_PATH`` forces, or None."""
    forced = os.environ.get(ENV, "").strip().lower()
    return check_path(forced) if forced else None


def choose_path(shape: Tuple[int, int, int], dtype: torch.dtype, device: str) -> str:
    """The static choice for this (B, N, C) shape, dtype and device type (the env override first)."""
    forced = forced_path()
    if forced:
        return forced
    for rule in RULES:
        if rule.matches(tuple(int(s) for s in shape), dtype, device):
            return rule.path
    return "triton"


def sdpa_applies(shape: Tuple[int, int, int], dtype: torch.dtype) -> bool:
    """Whether an O(N C)-memory SDPA backend takes this shape: flash / cuDNN (half, C <= 256) or
    the memory-efficient one (C divisible by 8); otherwise SDPA would fall back to its math
    backend, which is the reference."""
    c = int(shape[-1])
    return (dtype in HALF and c <= 256) or c % 8 == 0


def candidate_paths(shape: Tuple[int, int, int], dtype: torch.dtype) -> List[str]:
    """The paths timed for a CUDA call, the reference first (the others must agree with it)."""
    from kernels._triton_utils import HAS_TRITON, TRITON_DTYPES

    paths = ["reference", "compiled"]
    if sdpa_applies(shape, dtype):
        paths.append("sdpa")
    if HAS_TRITON and dtype in TRITON_DTYPES.values():
        paths.append("triton")
    return paths


def sdpa_attention(x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """Masked-channel attention through ``scaled_dot_product_attention(Z, Z, X)``, Z = X * M."""
    m = mask.unsqueeze(1) if mask.dim() == 2 else mask
    z = (x * m).unsqueeze(1)
    return F.scaled_dot_product_attention(z, z, x.unsqueeze(1), scale=scale).squeeze(1)


_COMPILED: Dict[str, Callable] = {}


def compiled_reference(x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """``torch.compile`` of the reference (one compiled function per process)."""
    if "fn" not in _COMPILED:
        from kernels.masked_attention.reference import masked_channel_attention_reference

        _COMPILED["fn"] = torch.compile(masked_channel_attention_reference)
    return _COMPILED["fn"](x, mask, scale)


def _timing_possible(x: torch.Tensor) -> bool:
    if x.device.type != "cuda" or os.environ.get(TIMING_ENV, "1").strip() == "0":
        return False
    if torch.compiler.is_compiling():
        return False
    return not torch.cuda.is_current_stream_capturing()


_DECIDED: Dict[Tuple[str, str], str] = {}


def pick_path(x: torch.Tensor, mask: torch.Tensor, scale: float, run: Callable[..., torch.Tensor]) -> str:
    """The path for this call: forced, else decided by timing (CUDA, cached), else the rules.

    ``run(path, x, mask)`` computes one path (the op passes its own runner)."""
    forced = forced_path()
    if forced:
        return forced
    if not _timing_possible(x):
        return choose_path(tuple(x.shape), x.dtype, x.device.type)
    from kernels.masked_attention.dispatch_timing import DecisionCache, shape_class, timed_choice, versions_key

    grad = torch.is_grad_enabled() and (x.requires_grad or mask.requires_grad)
    memo = (versions_key(x.device), shape_class(x, mask, grad))
    if memo not in _DECIDED:
        paths = candidate_paths(tuple(x.shape), x.dtype)
        _DECIDED[memo] = timed_choice(run, paths, x, mask, grad, DecisionCache())
    return _DECIDED[memo]


__all__ = ["ENV", "PATHS", "RULES", "TIMING_ENV", "Rule", "candidate_paths", "check_path", "choose_path",
           "compiled_reference", "forced_path", "pick_path", "sdpa_applies", "sdpa_attention"]
