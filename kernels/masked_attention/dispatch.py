"""Which implementation computes masked-channel attention for a given (shape, dtype, device).

Three correct paths compute the same Y = softmax(scale (X*M)(X*M)^T) X:

* ``"triton"``: the custom op ``edge_reid::masked_channel_attention`` (Triton kernels on CUDA and
  under ``TRITON_INTERPRET=1``; inside the op, the PyTorch reference elsewhere);
* ``"sdpa"``: PyTorch's ``scaled_dot_product_attention(Z, Z, X)`` with Z = X * M (B x 1 x N x C;
  flash / cuDNN for half precision and head dim <= 256, the memory-efficient backend for head
  dims divisible by 8 incl. float32); autograd gives dZ = dQ + dK, so dX and dM follow;
* ``"reference"``: the plain PyTorch definition (materialises the N x N matrix; cuBLAS GEMMs).

:data:`RULES` is the one table that picks a path; the first rule that matches wins. It follows
the H200 measurements of kernels-gpu.md (the Triton kernels at 0.16-0.59x of eager at every
benchmark shape, float32 IEEE dots 6x slower than eager) and must be revised from the
``benchmarks/bench_kernels.py`` rows, which time every path. ``path=`` on the op, or the
environment variable ``EDGE_REID_ATTENTION_PATH``, forces one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from edge_reid.errors import InvalidInputError

PATHS: Tuple[str, ...] = ("triton", "sdpa", "reference")
HALF = (torch.float16, torch.bfloat16)
ENV = "EDGE_REID_ATTENTION_PATH"


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


#: The dispatch table (first match wins).
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


def choose_path(shape: Tuple[int, int, int], dtype: torch.dtype, device: str) -> str:
    """The path for inputs of this (B, N, C) shape, dtype and device type (``EDGE_REID_ATTENTION_PATH``
    overrides the table)."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced:
        return check_path(forced)
    for rule in RULES:
        if rule.matches(tuple(int(s) for s in shape), dtype, device):
            return rule.path
    return "triton"


def check_path(path: str) -> str:
    if path not in PATHS:
        raise InvalidInputError(f"Unknown attention path {path!r}; choose one of {', '.join(PATHS)}.")
    return path


def sdpa_attention(x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """Masked-channel attention through ``scaled_dot_product_attention(Z, Z, X)``, Z = X * M."""
    m = mask.unsqueeze(1) if mask.dim() == 2 else mask
    z = (x * m).unsqueeze(1)
    return F.scaled_dot_product_attention(z, z, x.unsqueeze(1), scale=scale).squeeze(1)


__all__ = ["ENV", "PATHS", "RULES", "Rule", "check_path", "choose_path", "sdpa_attention"]
