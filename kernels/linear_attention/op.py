"""The public linear attention op: one call whatever the device.

``linear_attention(q, k, v, scale=None, order="auto")`` goes through the custom op
``edge_reid::linear_attention`` whose backward is the custom op
``edge_reid::linear_attention_backward``. Both have fake (meta) implementations, so
torch.compile and torch.export trace them as single nodes. Both run the PyTorch reference: the
Triton kernels of the linear form take the tokens and their channel mask instead of Q, K, V
(``masked.masked_linear_attention``, what the DCS models call), so that X*M is never written to
memory. During ONNX export the public function calls the reference directly (standard operators).
"""

from typing import Optional, Tuple

import torch

from kernels.linear_attention.reference import (
    check_inputs,
    choose_order,
    linear_attention_backward_reference,
    linear_attention_flops,
    linear_attention_reference,
    resolve_scale,
)


@torch.library.custom_op("edge_reid::linear_attention", mutates_args=())
def _la_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, order: str) -> torch.Tensor:
    """Y = scale * Q K^T V (B x N x C)."""
    return linear_attention_reference(q, k, v, scale, order).contiguous()


@_la_op.register_fake
def _la_op_fake(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, order: str) -> torch.Tensor:
    return q.new_empty(q.shape)


@torch.library.custom_op("edge_reid::linear_attention_backward", mutates_args=())
def _la_bwd_op(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
               order: str) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dQ, dK, dV) of linear attention."""
    dq, dk, dv = linear_attention_backward_reference(grad_out, q, k, v, scale, order)
    return dq.contiguous(), dk.contiguous(), dv.contiguous()


@_la_bwd_op.register_fake
def _la_bwd_fake(grad_out, q, k, v, scale, order):  # type: ignore[no-untyped-def]
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    q, k, v, scale, order = inputs
    ctx.save_for_backward(q, k, v)
    ctx.scale, ctx.order = scale, order


def _backward(ctx, grad_out):  # type: ignore[no-untyped-def]
    q, k, v = ctx.saved_tensors
    dq, dk, dv = _la_bwd_op(grad_out.contiguous(), q, k, v, ctx.scale, ctx.order)
    return dq, dk, dv, None, None


_la_op.register_autograd(_backward, setup_context=_setup_context)


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: Optional[float] = None,
                     order: str = "auto") -> torch.Tensor:
    """Linear attention Y = scale * Q K^T V (DCS-Attention's ``linear`` form).

    q: B x N x C; k, v: B x M x C; scale defaults to 1/M; ``order`` is ``"kv"`` (Q (K^T V)),
    ``"qk"`` ((Q K^T) V) or ``"auto"`` (the cheaper for the shapes; the same result up to
    rounding). Returns B x N x C.
    """
    check_inputs(q, k, v, order)
    s = resolve_scale(k.shape[1], scale)
    resolved = choose_order(q.shape[1], k.shape[1], q.shape[2], order)
    if torch.onnx.is_in_onnx_export():
        return linear_attention_reference(q, k, v, s, resolved)
    dtype = q.dtype
    return _la_op(q, k.to(dtype), v.to(dtype), s, resolved)


def _register_flop_formulas() -> None:
    """Teach torch's FlopCounterMode the cost of the custom ops (it counts 0 for unknown ops)."""
    from torch.utils.flop_counter import register_flop_formula

    @register_flop_formula(torch.ops.edge_reid.linear_attention)
    def _forward_flops(q_shape, k_shape, v_shape, scale, order, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
        return linear_attention_flops(q_shape[0], q_shape[1], k_shape[1], q_shape[2], order)

    @register_flop_formula(torch.ops.edge_reid.linear_attention_backward)
    def _backward_flops(grad_shape, q_shape, k_shape, v_shape, scale, order, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
        return linear_attention_flops(q_shape[0], q_shape[1], k_shape[1], q_shape[2], order, backward=True)


_register_flop_formulas()
