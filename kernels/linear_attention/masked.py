"""DCS-Attention's linear form on tokens and their channel mask: one call whatever the device.

``masked_linear_attention(x, mask, size, key_stride)`` = (X*M) ((X_s*M_s)^T X_s) / N_s with X_s, M_s
the key tokens at spatial stride ``key_stride`` of the H x W map (``reference.key_tokens``). Two
correct paths (``choose_path``; ``path=`` or the environment variable
``EDGE_REID_LINEAR_ATTENTION_PATH`` forces one):

* ``"triton"``: the custom op ``edge_reid::masked_linear_attention`` (backward: the custom op
  ``..._backward``, gradients for X and M), both with fake implementations (one node under
  torch.compile / export). Triton kernels (``triton_linear.py``: mask applied on load, keys read in
  place, Q (K^T V) order) on CUDA and under ``TRITON_INTERPRET=1``; inside the op, the PyTorch
  reference elsewhere.
* ``"reference"``: plain PyTorch ops (masks multiplied, keys sliced, ``linear_attention_reference``
  in the cheaper order), autograd through them.

:data:`RULES` picks: the op wherever the Q (K^T V) order is the cheaper one (DCS-MobileNetV2's
24/32-channel stages, DCS-ResNet50 after layer1), the reference where (Q K^T) V is (few tokens,
many channels: there the N x N_s product is tiny and cuBLAS serves it). Unmeasured on a GPU:
revise from ``benchmarks/bench_kernels.py``'s linear rows. ONNX export always takes the reference.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

from edge_reid.errors import InvalidInputError
from kernels._triton_utils import use_triton
from kernels.linear_attention.reference import (
    choose_order,
    linear_attention_flops,
    masked_linear_attention_backward_reference,
    masked_linear_attention_reference,
)

PATHS: Tuple[str, ...] = ("triton", "reference")
ENV = "EDGE_REID_LINEAR_ATTENTION_PATH"


def check_path(path: str) -> str:
    if path not in PATHS:
        raise InvalidInputError(f"Unknown linear attention path {path!r}; choose one of {', '.join(PATHS)}.")
    return path


#: (path, condition on (device type, resolved order)) in order; the first match wins.
RULES: Tuple[Tuple[str, str], ...] = (
    ("triton", "cpu: the custom op (interpreter kernels under TRITON_INTERPRET=1, else the reference)"),
    ("triton", "cuda, order kv: the fused kernels"),
    ("reference", "cuda, order qk: the N x N_s products through cuBLAS"),
)


def choose_path(tokens: int, keys: int, channels: int, device: str, order: str = "auto") -> str:
    """The path for these sizes on this device type (``EDGE_REID_LINEAR_ATTENTION_PATH`` overrides)."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced:
        return check_path(forced)
    if device != "cuda":
        return RULES[0][0]
    return RULES[1][0] if choose_order(tokens, keys, channels, order) == "kv" else RULES[2][0]


def _check(x: torch.Tensor, mask: torch.Tensor, size: Tuple[int, int], key_stride: int) -> None:
    if x.dim() != 3 or tuple(mask.shape) != tuple(x.shape):
        raise InvalidInputError(f"masked_linear_attention expects x and mask of one shape B x N x C, got "
                                f"{tuple(x.shape)} and {tuple(mask.shape)}.")
    if int(size[0]) * int(size[1]) != x.shape[1] or int(key_stride) < 1:
        raise InvalidInputError(f"masked_linear_attention needs size H x W = N ({x.shape[1]}) and key_stride >= 1, "
                                f"got {tuple(size)} and {key_stride!r}.")


def _reference_op(x, mask, height, width, key_stride, scale, order):  # type: ignore[no-untyped-def]
    return masked_linear_attention_reference(x, mask, (height, width), key_stride, scale, order)


@torch.library.custom_op("edge_reid::masked_linear_attention", mutates_args=())
def _mla_op(x: torch.Tensor, mask: torch.Tensor, height: int, width: int, key_stride: int,
            scale: float, order: str) -> torch.Tensor:
    """Y = (X*M) (scale (X_s*M_s)^T X_s), B x N x C (``order``: the reference's; the kernels use kv)."""
    if use_triton(x):
        from kernels.linear_attention.triton_linear import mla_forward

        return mla_forward(x, mask, (height, width), key_stride, scale)
    return _reference_op(x, mask, height, width, key_stride, scale, order).contiguous()


@_mla_op.register_fake
def _mla_fake(x, mask, height, width, key_stride, scale, order):  # type: ignore[no-untyped-def]
    return x.new_empty(x.shape)


@torch.library.custom_op("edge_reid::masked_linear_attention_backward", mutates_args=())
def _mla_bwd_op(grad: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, height: int, width: int,
                key_stride: int, scale: float, order: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """(dX, dM) of the linear form."""
    if use_triton(x):
        from kernels.linear_attention.triton_linear import mla_backward

        return mla_backward(grad, x, mask, (height, width), key_stride, scale)
    return masked_linear_attention_backward_reference(grad, x, mask, (height, width), key_stride, scale, order)


@_mla_bwd_op.register_fake
def _mla_bwd_fake(grad, x, mask, height, width, key_stride, scale, order):  # type: ignore[no-untyped-def]
    return x.new_empty(x.shape), x.new_empty(x.shape)


def _setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    x, mask, height, width, key_stride, scale, order = inputs
    ctx.save_for_backward(x, mask)
    ctx.args = (height, width, key_stride, scale, order)


def _backward(ctx, grad):  # type: ignore[no-untyped-def]
    x, mask = ctx.saved_tensors
    dx, dm = _mla_bwd_op(grad.contiguous(), x, mask, *ctx.args)
    return dx, dm, None, None, None, None, None


_mla_op.register_autograd(_backward, setup_context=_setup_context)


def masked_linear_attention(x: torch.Tensor, mask: torch.Tensor, size: Tuple[int, int], key_stride: int = 2,
                            scale: Optional[float] = None, order: str = "auto",
                            path: Optional[str] = None) -> torch.Tensor:
    """DCS linear attention (X*M) ((X_s*M_s)^T X_s) * scale for tokens of an H x W map.

    x, mask: B x N x C (N = H*W, any strides; a float mask receives a gradient); ``size`` = (H, W);
    keys at ``key_stride``; scale defaults to 1 / N_s; ``order`` ("auto", "kv", "qk") is the
    reference's evaluation order (the kernels use Q (K^T V)); ``path`` ("triton", "reference")
    forces an implementation. Returns B x N x C.
    """
    _check(x, mask, size, key_stride)
    h, w, s = int(size[0]), int(size[1]), int(key_stride)
    mask = mask.to(x.dtype)
    n_keys = -(-h // s) * -(-w // s)
    sc = float(scale) if scale is not None else 1.0 / n_keys
    if torch.onnx.is_in_onnx_export():
        return masked_linear_attention_reference(x, mask, (h, w), s, sc, order)
    chosen = check_path(path) if path is not None else choose_path(h * w, n_keys, x.shape[2], x.device.type, order)
    if chosen == "reference":
        return masked_linear_attention_reference(x, mask, (h, w), s, sc, order)
    return _mla_op(x, mask, h, w, s, sc, choose_order(h * w, n_keys, x.shape[2], order))


def _register_flop_formulas() -> None:
    """The cost of the op's resolved order (``linear_attention_flops``); the backward twice that."""
    from torch.utils.flop_counter import register_flop_formula

    def flops(shape, height, width, key_stride, order, backward=False) -> int:  # type: ignore[no-untyped-def]
        ns = -(-height // key_stride) * -(-width // key_stride)
        return linear_attention_flops(shape[0], shape[1], ns, shape[2], order, backward)

    @register_flop_formula(torch.ops.edge_reid.masked_linear_attention)
    def _fwd(x_shape, m_shape, height, width, key_stride, scale, order, out_shape=None, **kw) -> int:  # type: ignore[no-untyped-def]
        return flops(x_shape, height, width, key_stride, order)

    @register_flop_formula(torch.ops.edge_reid.masked_linear_attention_backward)
    def _bwd(g_shape, x_shape, m_shape, height, width, key_stride, scale, order, out_shape=None, **kw) -> int:  # type: ignore[no-untyped-def]
        return flops(x_shape, height, width, key_stride, order, backward=True)


_register_flop_formulas()

__all__ = ["ENV", "PATHS", "RULES", "check_path", "choose_path", "masked_linear_attention"]
