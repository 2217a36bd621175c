"""Triton kernels for VisNet's fusion: the weighted scale sum with its GAP, forward and backward.

Forward (grid: batch x channel blocks): fused[b, d, :] = sum_s w[b, s] * P_s[b, d, :] and
gap[b, d] = mean(fused[b, d, :]) in one read of the maps and one write of the fused map (the
memory-bound part of the fusion). Up to four maps are passed as separate pointers (no stacking
copy); each map is B x D x HW with arbitrary batch/channel strides and unit position stride.

Backward (same grid): with G = dFused + dGap / HW, dP_s = w_s * G and the partial sums
dw[b, s] = sum_d,hw P_s * G per channel block (reduced in PyTorch).

The sampled projection (gather + matmul + BN + ReLU + blend) is its own kernel in
triton_projection.py (eval mode; training mode projects with PyTorch ops, see fast.py).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import triton
import triton.language as tl

from kernels.autotune import autotune, bucket, make_pruner

_GPU = [dict(BLOCK_D=32, BLOCK_HW=32, num_warps=4), dict(BLOCK_D=64, BLOCK_HW=32, num_warps=4),
        dict(BLOCK_D=16, BLOCK_HW=64, num_warps=2), dict(BLOCK_D=128, BLOCK_HW=32, num_warps=8)]
_CPU = dict(BLOCK_D=64, BLOCK_HW=32, num_warps=4)


def _programs(meta: dict, args: dict) -> int:
    return int(args["W"].shape[0]) * triton.cdiv(int(args["D"]), meta["BLOCK_D"])


def _fits(meta: dict, args: dict) -> bool:
    """No position tile wider than the map (VisNet's 8 x 4 maps: 32 positions)."""
    return meta["BLOCK_HW"] <= bucket(int(args["HW"]), 32)


# Elementwise and reductions only: no shared-memory tiles to bound (estimate 0).
_PRUNE = make_pruner(tensor_arg="W", shared_bytes=lambda meta, elem: 0, programs=_programs, fits=_fits)


@triton.jit
def _acc_map(acc, P, sb, sd, W, b, S: tl.constexpr, s: tl.constexpr, offs_d, offs_p, m):
    w = tl.load(W + b * S + s).to(tl.float32)
    x = tl.load(P + b * sb + offs_d[:, None] * sd + offs_p[None, :], mask=m, other=0.0).to(tl.float32)
    return acc + w * x


@autotune(_GPU, _CPU, key=["D", "HW", "B_BUCKET"], pruner=_PRUNE)
@triton.jit
def _wsum_fwd(P0, P1, P2, P3, s0b, s0d, s1b, s1d, s2b, s2d, s3b, s3d, W, OUT, GAP, D, HW, inv_hw, B_BUCKET,
              S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_HW: tl.constexpr):
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    gap = tl.zeros([BLOCK_D], dtype=tl.float32)
    for p0 in range(0, HW, BLOCK_HW):
        offs_p = p0 + tl.arange(0, BLOCK_HW)
        m = (offs_d[:, None] < D) & (offs_p[None, :] < HW)
        acc = tl.zeros([BLOCK_D, BLOCK_HW], dtype=tl.float32)
        acc = _acc_map(acc, P0, s0b, s0d, W, b, S, 0, offs_d, offs_p, m)
        if S > 1:
            acc = _acc_map(acc, P1, s1b, s1d, W, b, S, 1, offs_d, offs_p, m)
        if S > 2:
            acc = _acc_map(acc, P2, s2b, s2d, W, b, S, 2, offs_d, offs_p, m)
        if S > 3:
            acc = _acc_map(acc, P3, s3b, s3d, W, b, S, 3, offs_d, offs_p, m)
        tl.store(OUT + b * D * HW + offs_d[:, None] * HW + offs_p[None, :], acc.to(OUT.dtype.element_ty), mask=m)
        gap += tl.sum(acc, 1)
    tl.store(GAP + b * D + offs_d, (gap * inv_hw).to(GAP.dtype.element_ty), mask=offs_d < D)


@triton.jit
def _bwd_map(P, sb, sd, DP, W, DWP, b, pid_d, nblk, G, S: tl.constexpr, s: tl.constexpr, offs_d, offs_p, m, D, HW):
    w = tl.load(W + b * S + s).to(tl.float32)
    x = tl.load(P + b * sb + offs_d[:, None] * sd + offs_p[None, :], mask=m, other=0.0).to(tl.float32)
    tl.store(DP + (b * D + offs_d[:, None]) * HW + offs_p[None, :],
             (w * G).to(DP.dtype.element_ty), mask=m)
    return tl.sum(tl.sum(x * G, 1), 0)


@autotune(_GPU, _CPU, key=["D", "HW", "B_BUCKET"], pruner=_PRUNE)
@triton.jit
def _wsum_bwd(P0, P1, P2, P3, s0b, s0d, s1b, s1d, s2b, s2d, s3b, s3d, W, DOUT, DGAP, DP0, DP1, DP2, DP3, DWP, D, HW, inv_hw,
              B_BUCKET,
              S: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_HW: tl.constexpr):
    b = tl.program_id(0)
    pid_d = tl.program_id(1)
    nblk = tl.num_programs(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    dg = tl.load(DGAP + b * D + offs_d, mask=offs_d < D, other=0.0).to(tl.float32) * inv_hw
    dw0 = 0.0
    dw1 = 0.0
    dw2 = 0.0
    dw3 = 0.0
    for p0 in range(0, HW, BLOCK_HW):
        offs_p = p0 + tl.arange(0, BLOCK_HW)
        m = (offs_d[:, None] < D) & (offs_p[None, :] < HW)
        g = tl.load(DOUT + b * D * HW + offs_d[:, None] * HW + offs_p[None, :], mask=m, other=0.0).to(tl.float32)
        g = tl.where(m, g + dg[:, None], 0.0)
        dw0 += _bwd_map(P0, s0b, s0d, DP0, W, DWP, b, pid_d, nblk, g, S, 0, offs_d, offs_p, m, D, HW)
        if S > 1:
            dw1 += _bwd_map(P1, s1b, s1d, DP1, W, DWP, b, pid_d, nblk, g, S, 1, offs_d, offs_p, m, D, HW)
        if S > 2:
            dw2 += _bwd_map(P2, s2b, s2d, DP2, W, DWP, b, pid_d, nblk, g, S, 2, offs_d, offs_p, m, D, HW)
        if S > 3:
            dw3 += _bwd_map(P3, s3b, s3d, DP3, W, DWP, b, pid_d, nblk, g, S, 3, offs_d, offs_p, m, D, HW)
    base = DWP + (b * nblk + pid_d) * S
    tl.store(base, dw0)
    if S > 1:
        tl.store(base + 1, dw1)
    if S > 2:
        tl.store(base + 2, dw2)
    if S > 3:
        tl.store(base + 3, dw3)


def _flat(maps: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    out = []
    for p in maps:
        f = p.reshape(p.shape[0], p.shape[1], -1)
        out.append(f if f.stride(2) == 1 else f.contiguous())
    return out


def _args(flat: List[torch.Tensor]) -> list:
    ptrs = flat + [flat[0]] * (4 - len(flat))
    strides = []
    for f in ptrs:
        strides += [f.stride(0), f.stride(1)]
    return ptrs + strides


def wsum_forward(maps: Sequence[torch.Tensor], weights: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Triton: (fused B x D x h x w, gap B x D) = (sum_s w_s P_s, its spatial mean)."""
    if not 1 <= len(maps) <= 4:
        raise ValueError("wsum_forward takes 1 to 4 maps")
    flat = _flat(maps)
    b, d, hw = flat[0].shape
    out = torch.empty((b, d, hw), dtype=maps[0].dtype, device=maps[0].device)
    gap = torch.empty((b, d), dtype=maps[0].dtype, device=maps[0].device)
    w = weights.contiguous()
    grid = lambda meta: (b, triton.cdiv(d, meta["BLOCK_D"]))  # noqa: E731
    _wsum_fwd[grid](*_args(flat), w, out, gap, d, hw, 1.0 / hw, bucket(b, 2), S=len(maps))
    return out.view(maps[0].shape), gap


def wsum_backward(maps: Sequence[torch.Tensor], weights: torch.Tensor, grad_fused: torch.Tensor,
                  grad_gap: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
    """Triton: (dP_s for every map, dW B x S)."""
    flat = _flat(maps)
    b, d, hw = flat[0].shape
    s = len(maps)
    dout = grad_fused.reshape(b, d, hw).contiguous()
    dgap = grad_gap.contiguous()
    dps = [torch.empty((b, d, hw), dtype=maps[0].dtype, device=maps[0].device) for _ in range(s)]
    w = weights.contiguous()
    cfg_block = {}
    # partial dw, one per (batch, channel block): sized for the smallest BLOCK_D any config uses
    # (at most 16, so a configuration forced from outside the autotune list fits too)
    min_block = min([16] + [c.kwargs["BLOCK_D"] for c in _wsum_bwd.configs])
    dwp = torch.zeros((b * triton.cdiv(d, min_block) * s,), dtype=torch.float32, device=maps[0].device)

    def grid(meta):
        cfg_block["n"] = triton.cdiv(d, meta["BLOCK_D"])
        if b * cfg_block["n"] * s > dwp.numel():
            raise ValueError(f"BLOCK_D={meta['BLOCK_D']} is below the smallest block wsum_backward supports")
        return (b, cfg_block["n"])

    _wsum_bwd[grid](*_args(flat), w, dout, dgap, *(dps + [dps[0]] * (4 - s)), dwp, d, hw, 1.0 / hw, bucket(b, 2), S=s)
    nblk = cfg_block["n"]
    dw = dwp[: b * nblk * s].view(b, nblk, s).sum(1).to(weights.dtype)
    return [dps[i].view(maps[i].shape) for i in range(s)], dw
