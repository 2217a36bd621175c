"""Public VisNet fusion op: the exact cheaper form, with the weighted sum + GAP as a custom op.

``scale_fusion(feats, f4, projections, mlp)`` returns (fused map, scale weights, GAP of the fused
map), equal to the paper-order computation (``reference.scale_fusion_reference``). Two custom ops
(fake impl + autograd), Triton on CUDA tensors (and on CPU under TRITON_INTERPRET=1), plain PyTorch
otherwise; ONNX export sees only the plain PyTorch form:

* ``edge_reid::sampled_projection``: gather + 1x1 projection + folded BN + ReLU + bilinear blend of
  one stage (triton_projection.py), used in eval mode (running BN statistics); it also returns the
  map's per-channel mean from the kernel's epilogue (the scale attention's input). Its backward is
  PyTorch ops (recomputes the sampled pre-activation). In training the BN batch statistics come
  from the input moments and the projection stays on the PyTorch path (fast.project_sampled).
* ``edge_reid::weighted_scale_sum``: the weighted sum of the maps + its GAP (triton_fusion.py).
"""

from typing import List, Optional, Sequence, Tuple

import torch

from kernels._triton_utils import use_triton
from kernels.scale_fusion.fast import folded_affine, project_sampled, project_sampled_affine, sampled_preactivation
from kernels.scale_fusion.reference import AttentionMLP, Projection


def weighted_sum_reference(maps: Sequence[torch.Tensor], weights: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum_s w_s P_s, its spatial mean) in plain PyTorch."""
    fused = maps[0] * weights[:, 0, None, None, None]
    for i in range(1, len(maps)):
        fused = fused + maps[i] * weights[:, i, None, None, None]
    return fused, fused.mean(dim=(2, 3))


@torch.library.custom_op("edge_reid::weighted_scale_sum", mutates_args=())
def _wsum_op(maps: List[torch.Tensor], weights: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(fused B x D x h x w, gap B x D) for maps P_s (B x D x h x w) and weights B x S."""
    if use_triton(maps[0]) and len(maps) <= 4:
        from kernels.scale_fusion.triton_fusion import wsum_forward

        return wsum_forward(maps, weights)
    fused, gap = weighted_sum_reference(maps, weights)
    return fused.contiguous(), gap.contiguous()


@_wsum_op.register_fake
def _wsum_fake(maps, weights):  # type: ignore[no-untyped-def]
    p = maps[0]
    return p.new_empty(p.shape), p.new_empty(p.shape[:2])


@torch.library.custom_op("edge_reid::weighted_scale_sum_backward", mutates_args=())
def _wsum_bwd_op(maps: List[torch.Tensor], weights: torch.Tensor, grad_fused: torch.Tensor,
                 grad_gap: torch.Tensor) -> List[torch.Tensor]:
    """[dP_1, ..., dP_S, dW]: with G = dFused + dGap / HW, dP_s = w_s G and dW_s = sum P_s G."""
    if use_triton(maps[0]) and len(maps) <= 4:
        from kernels.scale_fusion.triton_fusion import wsum_backward

        dps, dw = wsum_backward(maps, weights, grad_fused, grad_gap)
        return list(dps) + [dw]
    hw = grad_fused.shape[-2] * grad_fused.shape[-1]
    g = grad_fused + grad_gap[:, :, None, None] / hw
    dps = [(g * weights[:, i, None, None, None]).contiguous() for i in range(len(maps))]
    dw = torch.stack([(p * g).sum(dim=(1, 2, 3)) for p in maps], dim=1)
    return dps + [dw]


@_wsum_bwd_op.register_fake
def _wsum_bwd_fake(maps, weights, grad_fused, grad_gap):  # type: ignore[no-untyped-def]
    return [p.new_empty(p.shape) for p in maps] + [weights.new_empty(weights.shape)]


def _setup(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    maps, weights = inputs
    ctx.save_for_backward(weights, *maps)


def _backward(ctx, grad_fused, grad_gap):  # type: ignore[no-untyped-def]
    weights, *maps = ctx.saved_tensors
    if grad_fused is None:
        grad_fused = torch.zeros_like(maps[0])
    if grad_gap is None:
        grad_gap = maps[0].new_zeros(maps[0].shape[:2])
    out = _wsum_bwd_op(list(maps), weights, grad_fused.contiguous(), grad_gap.contiguous())
    return list(out[:-1]), out[-1]


_wsum_op.register_autograd(_backward, setup_context=_setup)


def weighted_scale_sum(maps: Sequence[torch.Tensor], weights: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(sum_s w_s P_s, GAP of it): one pass over the maps (Triton where it runs)."""
    if torch.onnx.is_in_onnx_export():
        return weighted_sum_reference(maps, weights)
    return _wsum_op(list(maps), weights)


@torch.library.custom_op("edge_reid::sampled_projection", mutates_args=())
def _proj_op(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, out_h: int,
             out_w: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(P, mean of P over positions): P = resize(ReLU(scale * (weight @ x) + shift)) to out_h x out_w from
    the sampled positions (B x D x h x w), the mean (B x D) from the Triton kernel's epilogue."""
    if use_triton(x):
        from kernels.scale_fusion.triton_projection import projection_forward

        return projection_forward(x, weight, scale, shift, (out_h, out_w))
    out = project_sampled_affine(x, weight, scale, shift, (out_h, out_w)).contiguous()
    return out, out.mean(dim=(2, 3))


@_proj_op.register_fake
def _proj_fake(x, weight, scale, shift, out_h, out_w):  # type: ignore[no-untyped-def]
    return x.new_empty((x.shape[0], weight.shape[0], out_h, out_w)), x.new_empty((x.shape[0], weight.shape[0]))


def projection_backward(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                        size: Tuple[int, int], grad: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """(dx, dweight, dscale, dshift) of the sampled projection, in PyTorch ops (recomputes z)."""
    in_h, in_w = int(x.shape[-2]), int(x.shape[-1])
    ws = weight * scale[:, None]
    xs, z, (ih, iw, ah, aw) = sampled_preactivation(x, ws, shift, size)
    g = grad
    if in_h != size[0]:
        g = torch.matmul(ah.t(), g)
    if in_w != size[1]:
        g = torch.matmul(g, aw)
    dz = g * (z > 0).to(g.dtype)
    dshift = dz.sum(dim=(0, 2, 3))
    dws = torch.einsum("bdhw,bchw->dc", dz, xs)
    dweight = dws * scale[:, None]
    dscale = (dws * weight).sum(1)
    dx = torch.einsum("dc,bdhw->bchw", ws, dz)
    if in_w != size[1]:
        dx = dx.new_zeros((dx.shape[0], dx.shape[1], dx.shape[2], in_w)).index_add(3, iw, dx)
    if in_h != size[0]:
        dx = dx.new_zeros((dx.shape[0], dx.shape[1], in_h, in_w)).index_add(2, ih, dx)
    return dx, dweight, dscale, dshift


def _proj_setup(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    x, weight, scale, shift, out_h, out_w = inputs
    ctx.size = (out_h, out_w)
    ctx.save_for_backward(x, weight, scale, shift)


def _proj_backward(ctx, grad, grad_mean):  # type: ignore[no-untyped-def]
    x, weight, scale, shift = ctx.saved_tensors
    if grad is None:
        grad = x.new_zeros((x.shape[0], weight.shape[0], *ctx.size))
    if grad_mean is not None:  # d mean / d P = 1 / (h w) at every position
        grad = grad + grad_mean[:, :, None, None] / float(ctx.size[0] * ctx.size[1])
    dx, dw, dscale, dshift = projection_backward(x, weight, scale, shift, ctx.size, grad)
    return dx, dw, dscale, dshift, None, None


_proj_op.register_autograd(_proj_backward, setup_context=_proj_setup)


def sampled_projection(p: Projection, x: torch.Tensor, size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """One stage's (P, its spatial mean B x D), P = resize(ReLU(BN(Conv1x1(x)))): the Triton kernel in
    eval mode where it runs, whose epilogue also gives the mean (no separate pass over P).

    Training-mode BN (batch statistics from the input moments, running-stat update) and CPU tensors
    without TRITON_INTERPRET=1 use the PyTorch form (fast.project_sampled) and P.mean, as does ONNX export.
    """
    if p.uses_batch_stats or not use_triton(x) or torch.onnx.is_in_onnx_export():
        out = project_sampled(p, x, size)
        return out, out.mean(dim=(2, 3))
    scale, shift = folded_affine(p, x)
    w = p.weight.reshape(p.weight.shape[0], -1)
    return _proj_op(x, w, scale.to(x.dtype), shift.to(x.dtype), int(size[0]), int(size[1]))


def scale_fusion(
    feats: Sequence[torch.Tensor], f4: torch.Tensor, projections: Sequence[Projection], mlp: Optional[AttentionMLP]
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """VisNet's fusion, exact cheaper form: returns (fused map, scale weights B x S, GAP B x D).

    ``feats`` are the projected stages (each an integer multiple of F4's resolution) with their
    ``projections``; ``mlp`` None gives uniform weights 1/S (no scale attention). In training the
    BN batch statistics come from the input moments and the running statistics are updated.
    """
    size = (int(f4.shape[-2]), int(f4.shape[-1]))
    projected = [sampled_projection(p, x, size) for p, x in zip(projections, feats)]
    maps = [m for m, _ in projected] + [f4]
    if mlp is None:
        weights = f4.new_full((f4.shape[0], len(maps)), 1.0 / len(maps))
    else:  # GAP of the mean map = mean of the maps' means (the projections' come from their kernel)
        g = f4.mean(dim=(2, 3))
        for _, mean in projected:
            g = g + mean
        weights = mlp(g / len(maps))
    fused, gap = weighted_scale_sum(maps, weights)
    return fused, weights, gap
