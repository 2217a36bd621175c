"""Triton device functions shared by several kernels (imported only where Triton is installed)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def mm_acc(acc, a, b, IEEE: tl.constexpr):
    """acc + a @ b accumulated in float32; exact float32 products when IEEE (no TF32)."""
    if IEEE:
        r = acc + tl.dot(a, b, input_precision="ieee")
    else:
        r = acc + tl.dot(a, b)
    return r
