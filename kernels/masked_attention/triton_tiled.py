"""Channel-tiled Triton kernels for masked-channel attention, for C above the one-tile limit (C > 256).

The one-tile kernels (``triton_forward`` / ``triton_backward``) hold the whole channel dimension in
one tile and are used up to C = 256; wider C (C = 2048 in DCS-ResNet50's later blocks) cannot keep a
BLOCK_M x C accumulator in registers, so these kernels tile the channels instead:

Layout: X, M, dY are B x N x C with arbitrary strides (a B x C mask is passed as a stride-0
expansion over N). Never materialises the N x N matrix: each program holds one BLOCK_M x BLOCK_N
tile of logits, accumulated over channel tiles of BLOCK_C (so any C works), and accumulates one
BLOCK_DV slice of the output channels. Ragged N and C are handled with masked loads.

Forward (grid: query blocks x output-channel blocks x batch): online softmax in base 2; stores Y
and the natural-log logsumexp of every query row (the only softmax state the backward needs).

Backward (two kernels, no atomics), with Z = X*M, P = exp(scale*Z Z^T - lse), D = rowsum(dY*Y):
  * ``_mca_bwd_dq``: per query block, dZ_q = scale * sum_j (P * (dY X^T - D)) Z_j.
  * ``_mca_bwd_dkv``: per key block, dV = sum_i P^T dY_i and dZ_k = scale * sum_i dS^T Z_i.
The final elementwise combination (dX = dV + (dZ_q + dZ_k) * M, dM = (dZ_q + dZ_k) * X) is done
in PyTorch in :func:`tiled_backward` (memory-bound; fine at the wide C this path serves).
"""

from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl

from kernels.autotune import autotune, bucket, make_pruner
from kernels.masked_attention.triton_common import skip_before_hopper
# the tile rules (host side) live in triton_tiled_rules; the pruners below are built from them
from kernels.masked_attention.triton_tiled_rules import _fits, _fits_dkv, _programs, _shared_bytes

LOG2E = 1.4426950408889634

# Chosen with the ahead-of-time compile check (benchmarks/compile_kernels.py, sm_90). This path
# serves 16-bit inputs with C > 256 and, on a GPU, float32 with C > 64 (triton_attention.one_tile).
# Value tile 256 above C = 128, 128 below (only float32 gets there); at most two per value tile.
# Forward / dQ: the 64-row tiles compile to HGMMA in 16-bit without spills; in float32 (IEEE dots,
# no tensor cores) the 128-row value-128 tile spills 16 bytes in dQ.
_GPU_CONFIGS = [
    dict(BLOCK_M=64, BLOCK_N=32, BLOCK_C=32, BLOCK_DV=256, num_warps=8, num_stages=2),
    dict(BLOCK_M=64, BLOCK_N=32, BLOCK_C=64, BLOCK_DV=256, num_warps=8, num_stages=2),
    dict(BLOCK_M=128, BLOCK_N=32, BLOCK_C=32, BLOCK_DV=128, num_warps=8, num_stages=2),
    dict(BLOCK_M=32, BLOCK_N=32, BLOCK_C=32, BLOCK_DV=128, num_warps=4, num_stages=2),
]
# dK/dV: its dots have this key block as M (transposed orientation); wgmma needs M = 64 per
# warpgroup, so the 16-bit tiles have BLOCK_N = 64 (HGMMA only, 240-246 registers, no spill);
# with BLOCK_N = 32 they fell back to HMMA. In float32 the 64-key tiles spill 64 bytes, so float32
# keeps 32-key tiles (``_fits_dkv``).
_DKV_CONFIGS = [
    dict(BLOCK_M=32, BLOCK_N=64, BLOCK_C=32, BLOCK_DV=256, num_warps=8, num_stages=2),
    dict(BLOCK_M=32, BLOCK_N=64, BLOCK_C=64, BLOCK_DV=256, num_warps=8, num_stages=2),
    dict(BLOCK_M=64, BLOCK_N=32, BLOCK_C=32, BLOCK_DV=256, num_warps=8, num_stages=2),
    dict(BLOCK_M=32, BLOCK_N=32, BLOCK_C=32, BLOCK_DV=128, num_warps=4, num_stages=2),
]
# Interpreter: few, larger tiles (its cost is per operation); still several tiles on the test shapes.
_CPU_CONFIG = dict(BLOCK_M=32, BLOCK_N=32, BLOCK_C=64, BLOCK_DV=64, num_warps=4, num_stages=1)


#: Not timed in float32: they spill there (compile check, sm_90).
_FLOAT32_SPILLS = [_GPU_CONFIGS[2]]
_PRUNE = make_pruner(tensor_arg="X", shared_bytes=_shared_bytes, programs=_programs, fits=_fits,
                     float32_excluded=_FLOAT32_SPILLS)
# before sm_90 the 64-wide channel step of the dK/dV kernel spills 8 bytes (compile check, sm_87)
_PRUNE_DKV = skip_before_hopper(
    make_pruner(tensor_arg="X", shared_bytes=_shared_bytes, programs=_programs, fits=_fits_dkv), [_DKV_CONFIGS[1]])


@triton.jit
def _mm(a, b, IEEE: tl.constexpr):
    """a @ b accumulated in float32; exact float32 products when IEEE (no TF32)."""
    if IEEE:
        r = tl.dot(a, b, input_precision="ieee")
    else:
        r = tl.dot(a, b)
    return r


@triton.jit
def _logits_tile(xb, mb, sxn, sxc, smn, smc, offs_m, offs_n, N, C,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, IEEE: tl.constexpr):
    """(X*M)[offs_m] @ (X*M)[offs_n]^T, reduced over channel tiles (masked as they load)."""
    s = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    offs_c0 = tl.arange(0, BLOCK_C)
    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + offs_c0
        cm = offs_c[None, :] < C
        lq = (offs_m[:, None] < N) & cm
        lk = (offs_n[:, None] < N) & cm
        q = tl.load(xb + offs_m[:, None] * sxn + offs_c[None, :] * sxc, mask=lq, other=0.0)
        q = q * tl.load(mb + offs_m[:, None] * smn + offs_c[None, :] * smc, mask=lq, other=0.0)
        k = tl.load(xb + offs_n[:, None] * sxn + offs_c[None, :] * sxc, mask=lk, other=0.0)
        k = k * tl.load(mb + offs_n[:, None] * smn + offs_c[None, :] * smc, mask=lk, other=0.0)
        s += _mm(q, tl.trans(k), IEEE)
    return s


@triton.jit
def _rows_dot_tile(ab, sa_n, sa_c, bb, sb_n, sb_c, offs_m, offs_n, N, C,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, IEEE: tl.constexpr):
    """A[offs_m] @ B[offs_n]^T over all channels (used for dP = dY X^T)."""
    s = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    offs_c0 = tl.arange(0, BLOCK_C)
    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + offs_c0
        cm = offs_c[None, :] < C
        a = tl.load(ab + offs_m[:, None] * sa_n + offs_c[None, :] * sa_c, mask=(offs_m[:, None] < N) & cm, other=0.0)
        b = tl.load(bb + offs_n[:, None] * sb_n + offs_c[None, :] * sb_c, mask=(offs_n[:, None] < N) & cm, other=0.0)
        s += _mm(a, tl.trans(b), IEEE)
    return s


@autotune(_GPU_CONFIGS, _CPU_CONFIG, key=["N_BUCKET", "B_BUCKET", "C"], pruner=_PRUNE)
@triton.jit
def _mca_fwd(X, M, O, LSE,
             sxb, sxn, sxc, smb, smn, smc, sob, son, soc,
             N, C, scale_log2, N_BUCKET, B_BUCKET,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_DV: tl.constexpr,
             IEEE: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_v = tl.program_id(1)
    b = tl.program_id(2)
    xb = X + b * sxb
    mb = M + b * smb
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_v = pid_v * BLOCK_DV + tl.arange(0, BLOCK_DV)
    offs_n0 = tl.arange(0, BLOCK_N)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + offs_n0
        s = _logits_tile(xb, mb, sxn, sxc, smn, smc, offs_m, offs_n, N, C, BLOCK_M, BLOCK_N, BLOCK_C, IEEE)
        s = tl.where(offs_n[None, :] < N, s * scale_log2, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(xb + offs_n[:, None] * sxn + offs_v[None, :] * sxc,
                    mask=(offs_n[:, None] < N) & (offs_v[None, :] < C), other=0.0)
        acc = acc * alpha[:, None] + _mm(p.to(v.dtype), v, IEEE)
        m_i = m_new
    acc = acc / l_i[:, None]
    ob = O + b * sob
    tl.store(ob + offs_m[:, None] * son + offs_v[None, :] * soc, acc.to(O.dtype.element_ty),
             mask=(offs_m[:, None] < N) & (offs_v[None, :] < C))
    if pid_v == 0:
        lse = (m_i + tl.log2(l_i)) * 0.6931471805599453
        tl.store(LSE + b * N + offs_m, lse, mask=offs_m < N)


@autotune(_GPU_CONFIGS, _CPU_CONFIG, key=["N_BUCKET", "B_BUCKET", "C"], pruner=_PRUNE)
@triton.jit
def _mca_bwd_dq(X, M, DY, LSE, DELTA, DZQ,
                sxb, sxn, sxc, smb, smn, smc, sgb, sgn, sgc,
                N, C, scale, scale_log2, N_BUCKET, B_BUCKET,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_DV: tl.constexpr,
                IEEE: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_v = tl.program_id(1)
    b = tl.program_id(2)
    xb = X + b * sxb
    mb = M + b * smb
    gb = DY + b * sgb
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_v = pid_v * BLOCK_DV + tl.arange(0, BLOCK_DV)
    offs_n0 = tl.arange(0, BLOCK_N)
    rm = offs_m < N
    lse2 = tl.load(LSE + b * N + offs_m, mask=rm, other=0.0) * 1.4426950408889634
    delta = tl.load(DELTA + b * N + offs_m, mask=rm, other=0.0)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + offs_n0
        s = _logits_tile(xb, mb, sxn, sxc, smn, smc, offs_m, offs_n, N, C, BLOCK_M, BLOCK_N, BLOCK_C, IEEE)
        valid = rm[:, None] & (offs_n[None, :] < N)
        p = tl.where(valid, tl.exp2(s * scale_log2 - lse2[:, None]), 0.0)
        dp = _rows_dot_tile(gb, sgn, sgc, xb, sxn, sxc, offs_m, offs_n, N, C, BLOCK_M, BLOCK_N, BLOCK_C, IEEE)
        ds = p * (dp - delta[:, None])
        lz = (offs_n[:, None] < N) & (offs_v[None, :] < C)
        z = tl.load(xb + offs_n[:, None] * sxn + offs_v[None, :] * sxc, mask=lz, other=0.0)
        z = z * tl.load(mb + offs_n[:, None] * smn + offs_v[None, :] * smc, mask=lz, other=0.0)
        acc += _mm(ds.to(z.dtype), z, IEEE)
    tl.store(DZQ + b * N * C + offs_m[:, None] * C + offs_v[None, :], acc * scale,
             mask=rm[:, None] & (offs_v[None, :] < C))


@autotune(_DKV_CONFIGS, _CPU_CONFIG, key=["N_BUCKET", "B_BUCKET", "C"], pruner=_PRUNE_DKV)
@triton.jit
def _mca_bwd_dkv(X, M, DY, LSE, DELTA, DV, DZK,
                 sxb, sxn, sxc, smb, smn, smc, sgb, sgn, sgc,
                 N, C, scale, scale_log2, N_BUCKET, B_BUCKET,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_DV: tl.constexpr,
                 IEEE: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_v = tl.program_id(1)
    b = tl.program_id(2)
    xb = X + b * sxb
    mb = M + b * smb
    gb = DY + b * sgb
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_v = pid_v * BLOCK_DV + tl.arange(0, BLOCK_DV)
    offs_m0 = tl.arange(0, BLOCK_M)
    rn = offs_n < N
    dv = tl.zeros([BLOCK_N, BLOCK_DV], dtype=tl.float32)
    dk = tl.zeros([BLOCK_N, BLOCK_DV], dtype=tl.float32)
    for m0 in range(0, N, BLOCK_M):
        offs_m = m0 + offs_m0
        rm = offs_m < N
        lse2 = tl.load(LSE + b * N + offs_m, mask=rm, other=0.0) * 1.4426950408889634
        delta = tl.load(DELTA + b * N + offs_m, mask=rm, other=0.0)
        # transposed orientation (this block's keys are the dots' rows, M = BLOCK_N): S^T = Z_n Z_m^T,
        # so no P^T operand is formed (a transposed 32-row P fell back to mma.sync on sm_90)
        st = _logits_tile(xb, mb, sxn, sxc, smn, smc, offs_n, offs_m, N, C, BLOCK_N, BLOCK_M, BLOCK_C, IEEE)
        pt = tl.where(rn[:, None] & rm[None, :], tl.exp2(st * scale_log2 - lse2[None, :]), 0.0)
        lg = rm[:, None] & (offs_v[None, :] < C)
        g = tl.load(gb + offs_m[:, None] * sgn + offs_v[None, :] * sgc, mask=lg, other=0.0)
        dv += _mm(pt.to(g.dtype), g, IEEE)
        dpt = _rows_dot_tile(xb, sxn, sxc, gb, sgn, sgc, offs_n, offs_m, N, C, BLOCK_N, BLOCK_M, BLOCK_C, IEEE)
        dst = pt * (dpt - delta[None, :])
        z = tl.load(xb + offs_m[:, None] * sxn + offs_v[None, :] * sxc, mask=lg, other=0.0)
        z = z * tl.load(mb + offs_m[:, None] * smn + offs_v[None, :] * smc, mask=lg, other=0.0)
        dk += _mm(dst.to(z.dtype), z, IEEE)
    out_mask = rn[:, None] & (offs_v[None, :] < C)
    base = b * N * C + offs_n[:, None] * C + offs_v[None, :]
    tl.store(DV + base, dv, mask=out_mask)
    tl.store(DZK + base, dk * scale, mask=out_mask)


# compile_check.candidate_configs: the configurations a launch may run
_mca_fwd.fits = _mca_bwd_dq.fits = _fits
_mca_bwd_dkv.fits = _fits_dkv


def _mask_view(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A B x N x C view of the mask in x's dtype (stride 0 over N for a B x C mask)."""
    mask = mask.to(x.dtype)
    return mask.unsqueeze(1).expand_as(x) if mask.dim() == 2 else mask


def tiled_forward(x: torch.Tensor, mask: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Triton forward: (Y as B x N x C contiguous, natural-log lse as B x N float32)."""
    B, N, C = x.shape
    m = _mask_view(x, mask)
    out = torch.empty((B, N, C), dtype=x.dtype, device=x.device)
    lse = torch.empty((B, N), dtype=torch.float32, device=x.device)
    grid = lambda meta: (triton.cdiv(N, meta["BLOCK_M"]), triton.cdiv(C, meta["BLOCK_DV"]), B)  # noqa: E731
    _mca_fwd[grid](x, m, out, lse, *x.stride(), *m.stride(), *out.stride(),
                   N, C, scale * LOG2E, bucket(N), bucket(B, 2), IEEE=x.dtype == torch.float32)
    return out, lse


def tiled_backward(grad_out: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, out: torch.Tensor,
                 lse: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Triton backward: (dX, dM) with dM shaped like the mask (summed over N for a B x C mask)."""
    B, N, C = x.shape
    m = _mask_view(x, mask)
    delta = (grad_out.float() * out.float()).sum(-1).contiguous()
    lse = lse.contiguous()
    dzq = torch.empty((B, N, C), dtype=torch.float32, device=x.device)
    dzk = torch.empty_like(dzq)
    dv = torch.empty_like(dzq)
    ieee = x.dtype == torch.float32
    grid_q = lambda meta: (triton.cdiv(N, meta["BLOCK_M"]), triton.cdiv(C, meta["BLOCK_DV"]), B)  # noqa: E731
    _mca_bwd_dq[grid_q](x, m, grad_out, lse, delta, dzq, *x.stride(), *m.stride(), *grad_out.stride(),
                        N, C, scale, scale * LOG2E, bucket(N), bucket(B, 2), IEEE=ieee)
    grid_k = lambda meta: (triton.cdiv(N, meta["BLOCK_N"]), triton.cdiv(C, meta["BLOCK_DV"]), B)  # noqa: E731
    _mca_bwd_dkv[grid_k](x, m, grad_out, lse, delta, dv, dzk, *x.stride(), *m.stride(), *grad_out.stride(),
                         N, C, scale, scale * LOG2E, bucket(N), bucket(B, 2), IEEE=ieee)
    dz = dzq + dzk
    dx = dv + dz * m.float()
    dm = dz * x.float()
    if mask.dim() == 2:
        dm = dm.sum(1)
    return dx.to(x.dtype), dm.to(x.dtype)


__all__ = ["tiled_forward", "tiled_backward"]
