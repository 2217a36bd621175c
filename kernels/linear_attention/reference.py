"""PyTorch definition of linear (non-local, no softmax) attention, forward and backward.

Y = scale * Q K^T V with Q: B x N x C, K and V: B x M x C (M key tokens, e.g. a strided subset of
the N query tokens), scale default 1 / M (the simplified non-local block: the affinity normalised
by the number of key positions). Both evaluation orders give the same result up to rounding:

* ``"kv"``: Q (K^T V), (N + M) C^2 multiply-adds (cheap when C is small next to N);
* ``"qk"``: (Q K^T) V, 2 N M C multiply-adds (cheap when C is large next to N, M).

``order="auto"`` picks the cheaper one from the shapes. This file is the definition a Triton
kernel is tested against, the fallback where Triton cannot run, and what ONNX export traces
(MatMul and Mul only).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from edge_reid.errors import InvalidInputError

ORDERS = ("auto", "kv", "qk")


def check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, order: str = "auto") -> None:
    """Raise a one-sentence error for shapes or an order the op does not accept."""
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3:
        raise InvalidInputError(
            f"linear_attention expects q, k, v of shape B x N x C, B x M x C, B x M x C, got "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}."
        )
    b, _, c = q.shape
    if tuple(k.shape) != tuple(v.shape) or k.shape[0] != b or k.shape[2] != c or k.shape[1] < 1:
        raise InvalidInputError(
            f"linear_attention needs k and v of shape {b} x M x {c} (M >= 1), got {tuple(k.shape)} and {tuple(v.shape)}."
        )
    if order not in ORDERS:
        raise InvalidInputError(f"linear_attention order must be one of {', '.join(ORDERS)}, got {order!r}.")


def resolve_scale(keys: int, scale: Optional[float]) -> float:
    """The normalisation: the given value, or 1 / (number of key tokens)."""
    return float(scale) if scale is not None else 1.0 / float(keys)


def order_costs(tokens: int, keys: int, channels: int) -> Tuple[int, int]:
    """Multiply-adds per sample of the two orders: (``kv``: (N + M) C^2, ``qk``: 2 N M C)."""
    return (tokens + keys) * channels * channels, 2 * tokens * keys * channels


def choose_order(tokens: int, keys: int, channels: int, order: str = "auto") -> str:
    """``order`` itself, or for ``"auto"`` the cheaper order for these sizes (``kv`` on a tie)."""
    if order != "auto":
        return order
    kv, qk = order_costs(tokens, keys, channels)
    return "kv" if kv <= qk else "qk"


def linear_attention_flops(batch: int, tokens: int, keys: int, channels: int, order: str = "auto",
                           backward: bool = False) -> int:
    """FLOPs (2 per multiply-add) of the forward (or the backward: twice the forward's products)."""
    kv, qk = order_costs(tokens, keys, channels)
    macs = kv if choose_order(tokens, keys, channels, order) == "kv" else qk
    return 2 * batch * macs * (2 if backward else 1)


def linear_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                               scale: Optional[float] = None, order: str = "auto") -> torch.Tensor:
    """Y = scale * Q K^T V in plain PyTorch ops (differentiable, exportable), in the chosen order."""
    check_inputs(q, k, v, order)
    s = resolve_scale(k.shape[1], scale)
    if choose_order(q.shape[1], k.shape[1], q.shape[2], order) == "kv":
        return torch.matmul(q, torch.matmul(k.transpose(-1, -2), v) * s)
    return torch.matmul(torch.matmul(q, k.transpose(-1, -2)) * s, v)


def linear_attention_backward_reference(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                        scale: float, order: str = "auto"
                                        ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dQ, dK, dV) written out, in the same order as the forward.

    ``kv`` (W = s K^T V, Y = Q W): dQ = dY W^T, G = s Q^T dY, dK = V G^T, dV = K G.
    ``qk`` (A = s Q K^T, Y = A V): dA = dY V^T, dQ = s dA K, dK = s dA^T Q, dV = A^T dY.
    """
    g = grad_out
    if choose_order(q.shape[1], k.shape[1], q.shape[2], order) == "kv":
        w = torch.matmul(k.transpose(-1, -2), v) * scale
        gw = torch.matmul(q.transpose(-1, -2), g) * scale
        return torch.matmul(g, w.transpose(-1, -2)), torch.matmul(v, gw.transpose(-1, -2)), torch.matmul(k, gw)
    a = torch.matmul(q, k.transpose(-1, -2)) * scale
    da = torch.matmul(g, v.transpose(-1, -2)) * scale
    return torch.matmul(da, k), torch.matmul(da.transpose(-1, -2), q), torch.matmul(a.transpose(-1, -2), g)


def key_tokens(t: torch.Tensor, size: Tuple[int, int], stride: int) -> torch.Tensor:
    """The key tokens of a B x N x C token tensor of an H x W map: positions with h, w multiples of
    ``stride`` (as ``map[..., ::stride, ::stride]``), B x N_s x C."""
    b, _, c = t.shape
    return t.reshape(b, int(size[0]), int(size[1]), c)[:, ::stride, ::stride].reshape(b, -1, c)


def masked_linear_attention_reference(x: torch.Tensor, mask: torch.Tensor, size: Tuple[int, int],
                                      key_stride: int = 2, scale: Optional[float] = None,
                                      order: str = "auto") -> torch.Tensor:
    """DCS linear form Y = (X*M) ((X_s*M_s)^T X_s) * scale (scale default 1 / N_s), plain PyTorch ops."""
    keys, key_mask = key_tokens(x, size, key_stride), key_tokens(mask, size, key_stride)
    return linear_attention_reference(x * mask, keys * key_mask, keys, scale, order)


def masked_linear_attention_backward_reference(grad_out: torch.Tensor, x: torch.Tensor, mask: torch.Tensor,
                                               size: Tuple[int, int], key_stride: int, scale: float,
                                               order: str = "auto") -> Tuple[torch.Tensor, torch.Tensor]:
    """(dX, dM) of :func:`masked_linear_attention_reference`, written out (contiguous B x N x C).

    With Q = X*M, K = X_s*M_s, V = X_s and (dQ, dK, dV) from :func:`linear_attention_backward_reference`:
    dX = dQ*M + [keys] (dK*M_s + dV), dM = dQ*X + [keys] dK*X_s.
    """
    b, n, c = x.shape
    h, w, s = int(size[0]), int(size[1]), int(key_stride)
    keys, key_mask = key_tokens(x, size, s), key_tokens(mask, size, s)
    dq, dk, dv = linear_attention_backward_reference(grad_out, x * mask, keys * key_mask, keys, scale, order)
    dx = (dq * mask).reshape(b, h, w, c)
    dm = (dq * x).reshape(b, h, w, c)
    hs, ws = dx[:, ::s, ::s].shape[1:3]
    dx[:, ::s, ::s] += (dk * key_mask + dv).reshape(b, hs, ws, c)
    dm[:, ::s, ::s] += (dk * keys).reshape(b, hs, ws, c)
    return dx.reshape(b, n, c).contiguous(), dm.reshape(b, n, c).contiguous()
