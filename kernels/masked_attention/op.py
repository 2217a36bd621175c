"""The public masked-channel attention op: one call whatever the device.

``masked_channel_attention(x, mask, scale=None)`` goes through the custom op
``edge_reid::masked_channel_attention`` (returns Y and the per-row logsumexp) whose backward is
the custom op ``edge_reid::masked_channel_attention_backward``. Both have fake (meta)
implementations, so torch.compile and torch.export trace them as single nodes. Each dispatches to
Triton for CUDA tensors (and CPU tensors under TRITON_INTERPRET=1), else to the PyTorch reference.
During ONNX export the public function calls the reference directly (standard ONNX operators).
The public function first picks a path (``dispatch.py``: this op, SDPA, the reference or its
torch.compile; on CUDA timed on first use at each shape class).
"""

from typing import Optional, Tuple

import torch

from kernels._triton_utils import use_triton
from kernels.masked_attention.dispatch import check_path, compiled_reference, pick_path, sdpa_attention
from kernels.masked_attention.reference import (
    attention_flops,
    check_inputs,
    masked_channel_attention_backward_reference,
    masked_channel_attention_forward_reference,
    masked_channel_attention_reference,
    resolve_scale,
)


@torch.library.custom_op("edge_reid::masked_channel_attention", mutates_args=())
def _mca_op(x: torch.Tensor, mask: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(Y, lse): Y = softmax(scale (X*M)(X*M)^T) X, lse the logsumexp of each query row (>= float32)."""
    if use_triton(x):
        from kernels.masked_attention.triton_attention import mca_forward

        return mca_forward(x, mask, scale)
    out, lse = masked_channel_attention_forward_reference(x, mask, scale)
    return out.contiguous(), lse.contiguous()


@_mca_op.register_fake
def _mca_op_fake(x: torch.Tensor, mask: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    b, n, c = x.shape
    return x.new_empty((b, n, c)), x.new_empty((b, n), dtype=torch.promote_types(x.dtype, torch.float32))


@torch.library.custom_op("edge_reid::masked_channel_attention_backward", mutates_args=())
def _mca_bwd_op(
    grad_out: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, out: torch.Tensor, lse: torch.Tensor, scale: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(dX, dM) of masked-channel attention, recomputing the attention from the saved lse."""
    if use_triton(x):
        from kernels.masked_attention.triton_attention import mca_backward

        return mca_backward(grad_out, x, mask, out, lse, scale)
    dx, dm = masked_channel_attention_backward_reference(grad_out, x, mask, out, lse, scale)
    return dx.contiguous(), dm.to(x.dtype).contiguous()


@_mca_bwd_op.register_fake
def _mca_bwd_fake(grad_out, x, mask, out, lse, scale):  # type: ignore[no-untyped-def]
    return x.new_empty(x.shape), x.new_empty(mask.shape)


def _setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    x, mask, scale = inputs
    out, lse = output
    ctx.save_for_backward(x, mask, out, lse)
    ctx.scale = scale


def _backward(ctx, grad_out, grad_lse):  # type: ignore[no-untyped-def]
    x, mask, out, lse = ctx.saved_tensors
    if grad_out is None:
        grad_out = torch.zeros_like(out)
    dx, dm = _mca_bwd_op(grad_out.contiguous(), x, mask, out, lse, ctx.scale)
    return dx, (dm.to(mask.dtype) if mask.is_floating_point() else None), None


_mca_op.register_autograd(_backward, setup_context=_setup_context)


def run_path(path: str, x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    """Y by one named path (see ``dispatch.PATHS``); mask already in x's dtype."""
    if path == "sdpa":
        return sdpa_attention(x, mask, scale)
    if path == "reference":
        return masked_channel_attention_reference(x, mask, scale)
    if path == "compiled":
        return compiled_reference(x, mask, scale)
    return _mca_op(x, mask, scale)[0]


def masked_channel_attention(x: torch.Tensor, mask: torch.Tensor, scale: Optional[float] = None,
                             path: Optional[str] = None) -> torch.Tensor:
    """Masked-channel attention Y = softmax((X*M)(X*M)^T * scale) X (DCS-Attention).

    x: B x N x C; mask: B x N x C or B x C (binary, any dtype; a float mask receives a gradient,
    for the straight-through estimator); scale defaults to 1/sqrt(C). Returns B x N x C.
    ``path`` ("triton", "sdpa", "reference", "compiled") forces an implementation; by default
    ``dispatch.pick_path`` picks one (all give the same result).
    """
    check_inputs(x, mask)
    s = resolve_scale(x.shape[-1], scale)
    if not mask.is_floating_point():
        mask = mask.to(x.dtype)
    if torch.onnx.is_in_onnx_export():
        return masked_channel_attention_reference(x, mask, s)
    if mask.dtype != x.dtype:
        mask = mask.to(x.dtype)
    chosen = check_path(path) if path is not None else pick_path(
        x, mask, s, lambda p, a, m: run_path(p, a, m, s))
    return run_path(chosen, x, mask, s)


def _register_flop_formulas() -> None:
    """Teach torch's FlopCounterMode the cost of the custom ops (it counts 0 for unknown ops).

    Forward: Q K^T and A V, 2 * B * N^2 * C multiply-adds. Backward (attention recomputed,
    then dV, dP, dQ, dK): 5 such products.
    """
    from torch.utils.flop_counter import register_flop_formula

    @register_flop_formula(torch.ops.edge_reid.masked_channel_attention)
    def _forward_flops(x_shape, mask_shape, scale, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
        return attention_flops(*x_shape)

    @register_flop_formula(torch.ops.edge_reid.masked_channel_attention_backward)
    def _backward_flops(grad_shape, x_shape, *rest, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
        return attention_flops(*x_shape, backward=True) - attention_flops(*x_shape)


_register_flop_formulas()
