"""PyTorch definition of masked-channel attention (DCS-Attention), forward and backward.

Y = softmax(scale * Q K^T) V with Q = K = X * M and V = X (all channels), X: B x N x C, the
binary mask M: B x N x C or B x C (one mask per sample), scale default 1/sqrt(C). This file is
the definition the Triton kernels are tested against, the fallback where Triton cannot run, and
what ONNX export traces (it uses only standard operators). It materialises the N x N matrix.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from edge_reid.errors import InvalidInputError


def resolve_scale(channels: int, scale: Optional[float]) -> float:
    """The softmax scale: the given value, or 1/sqrt(C)."""
    return float(scale) if scale is not None else 1.0 / math.sqrt(channels)


def check_inputs(x: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise a one-sentence error for shapes the op does not accept."""
    if x.dim() != 3:
        raise InvalidInputError(f"masked_channel_attention expects x of shape B x N x C, got {tuple(x.shape)}.")
    b, _, c = x.shape
    ok = (mask.dim() == 3 and tuple(mask.shape) == tuple(x.shape)) or (
        mask.dim() == 2 and tuple(mask.shape) == (b, c)
    )
    if not ok:
        raise InvalidInputError(
            f"masked_channel_attention expects a mask of shape {tuple(x.shape)} or {(b, c)}, got {tuple(mask.shape)}."
        )


def _mask3(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return mask.unsqueeze(1) if mask.dim() == 2 else mask


def masked_channel_attention_reference(
    x: torch.Tensor, mask: torch.Tensor, scale: Optional[float] = None
) -> torch.Tensor:
    """Y = softmax((X*M)(X*M)^T * scale) X, in plain PyTorch ops (differentiable, exportable)."""
    check_inputs(x, mask)
    s = resolve_scale(x.shape[-1], scale)
    q = x * _mask3(x, mask).to(x.dtype)
    attn = torch.softmax(torch.matmul(q, q.transpose(-1, -2)) * s, dim=-1)
    return torch.matmul(attn, x)


def masked_channel_attention_forward_reference(
    x: torch.Tensor, mask: torch.Tensor, scale: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(Y, logsumexp of each query row of scale * Q K^T); the lse is what the backward reuses."""
    acc = torch.promote_types(x.dtype, torch.float32)
    q = x * _mask3(x, mask).to(x.dtype)
    logits = torch.matmul(q, q.transpose(-1, -2)).to(acc) * scale
    lse = torch.logsumexp(logits, dim=-1)
    attn = torch.exp(logits - lse.unsqueeze(-1)).to(x.dtype)
    return torch.matmul(attn, x), lse


def masked_channel_attention_backward_reference(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    mask: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gradients (dX, dM) written out by hand; the same algebra as the Triton backward.

    With Z = X*M, A = softmax(scale Z Z^T), Y = A X and D_i = sum_c dY_ic Y_ic:
    dS = A * (dY X^T - D), dZ = scale (dS + dS^T) Z, dX = A^T dY + dZ * M, dM = dZ * X
    (summed over tokens when the mask is B x C).
    """
    acc = torch.promote_types(x.dtype, torch.float32)  # float32, or float64 for gradcheck
    m3 = _mask3(x, mask).to(acc)
    xa = x.to(acc)
    z = xa * m3
    logits = torch.matmul(z, z.transpose(-1, -2)) * scale
    attn = torch.exp(logits - lse.to(acc).unsqueeze(-1))
    g = grad_out.to(acc)
    delta = (g * out.to(acc)).sum(-1, keepdim=True)
    ds = attn * (torch.matmul(g, xa.transpose(-1, -2)) - delta)
    dz = scale * torch.matmul(ds + ds.transpose(-1, -2), z)
    dx = torch.matmul(attn.transpose(-1, -2), g) + dz * m3
    dm = dz * xa
    if mask.dim() == 2:
        dm = dm.sum(1)
    return dx.to(x.dtype), dm.to(x.dtype)


def attention_flops(batch: int, tokens: int, channels: int, backward: bool = False) -> int:
    """Algorithmic FLOPs (2 per multiply-add) of masked-channel attention, the convention
    FlashAttention reports: forward Q K^T and A V (2 products of B x N x N x C multiply-adds);
    backward dV, dP, dQ, dK and the recomputed Q K^T (5 more). Work a kernel repeats (logits
    recomputed per output-channel block) is not counted.
    """
    unit = 2 * batch * tokens * tokens * channels
    return unit * (7 if backward else 2)

