"""One-tile Triton backward of masked-channel attention (C <= 256), epilogue in the kernels.

With Z = X * M, S = scale Z Z^T (symmetric), P = exp(S - lse) row-wise, Y = P X,
D_i = sum_c dY_ic Y_ic, dS = P * (dY X^T - D): dZ = scale (dS + dS^T) Z, dV = P^T dY,
dX = dV + dZ * M, dM = dZ * X (summed over tokens for a B x C mask). Every product is one dot over
the whole channel tile (HEAD), with the program's own rows as the dots' M dimension (64-row slabs
per warpgroup: wgmma on sm_90, never a transposed P^T operand).

* ``_delta``: D per row (one pass over dY and Y).
* HEAD <= 64, ``_bwd_sym`` (the symmetric form; one program per token block j, all blocks i):
  T = Z_j Z_i^T gives both P_ji and P_ij^T, G = dS_ji + dS_ij^T, dZ_j += G Z_i,
  dV_j += P_ij^T dY_i: 5 N^2 C products, no atomics, deterministic.
* HEAD 128 / 256, FA2's split: ``_bwd_dkv`` (per key block: dV and dZ_k, 4 products; writes the
  float32 partials dV + dZ_k M and dZ_k X), then ``_bwd_dq`` (per query block: dZ_q, 3 products)
  whose epilogue adds its part and writes dX and dM. In this order the dK/dV epilogue holds no
  third B x HEAD tile (a dZ_q tile there spilled 48-184 bytes at HEAD 256 on sm_90).

The epilogues write dX and dM directly (dM of a B x C mask as per-block partial sums, added up in
PyTorch over N / 16 rows); the split form's partials are its only float32 B x N x C buffers.
"""

from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl

from kernels.autotune import autotune, bucket
from kernels.masked_attention.triton_common import (
    LOG2E, SYMMETRIC_MAX_HEAD, aligned_rows, dot_precision, head_tile, prepare, table_configs, table_pruner)

_S64 = dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=2)
_S128 = dict(BLOCK_M=64, BLOCK_N=128, num_warps=8, num_stages=2)
_Q128 = dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=2)
_Q64 = dict(BLOCK_M=64, BLOCK_N=64, num_warps=8, num_stages=2)
_K64 = dict(BLOCK_M=64, BLOCK_N=64, num_warps=8, num_stages=2)
_K64_M32 = dict(BLOCK_M=32, BLOCK_N=64, num_warps=8, num_stages=2)
_K64_M16 = dict(BLOCK_M=16, BLOCK_N=64, num_warps=8, num_stages=2)
_Q64_N32 = dict(BLOCK_M=64, BLOCK_N=32, num_warps=8, num_stages=2)

#: Tile tables (HEAD -> candidates; the pruner times at most two). BLOCK_N is the block a program
#: owns in ``_bwd_sym`` / ``_bwd_dkv`` (the dots' M), BLOCK_M the one it owns in ``_bwd_dq``.
SYM_TABLE = {16: [_S64, _S128], 32: [_S64, _S128], 64: [_S64, _S128]}
DQ_TABLE = {128: [_Q128, _Q64], 256: [_Q64, _Q64_N32]}
DKV_TABLE = {128: [_K64, _K64_M32], 256: [_K64_M32, _K64_M16]}
#: Every backward configuration once (the union of the tables above).
BWD_CONFIGS = table_configs({0: [c for t in (SYM_TABLE, DQ_TABLE, DKV_TABLE) for cs in t.values() for c in cs]})
DELTA_TABLE = {h: [dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=1)] for h in (16, 32, 64, 128, 256)}
_CPU = dict(BLOCK_M=32, BLOCK_N=32, num_warps=4, num_stages=1)
#: Configurations not timed in float32 (kernels/compile_check.py, sm_90: the 4-warp symmetric tile
#: spills 112-144 bytes with tf32x3 operands; the 8-warp one does not).
BWD_FLOAT32_SPILLS: list = [_S64]


def sym_shared_bytes(meta: dict, elem: int, head: int) -> int:
    """Own Z, X, dY tiles plus the pipelined Z, X, dY tiles of the other block."""
    return elem * head * 3 * (meta["BLOCK_N"] + meta["num_stages"] * meta["BLOCK_M"])


def dq_shared_bytes(meta: dict, elem: int, head: int) -> int:
    """Own Z, dY tiles plus the pipelined Z and X key tiles."""
    return elem * head * 2 * (meta["BLOCK_M"] + meta["num_stages"] * meta["BLOCK_N"])


def dkv_shared_bytes(meta: dict, elem: int, head: int) -> int:
    """Own Z, X tiles plus the pipelined Z and dY query tiles."""
    return elem * head * 2 * (meta["BLOCK_N"] + meta["num_stages"] * meta["BLOCK_M"])


def _pruner(table, shared, rows):  # type: ignore[no-untyped-def]
    return table_pruner(table, shared, rows, float32_excluded=BWD_FLOAT32_SPILLS)


_KEY = ["HEAD", "N_BUCKET", "B_BUCKET"]


@autotune(table_configs(DELTA_TABLE), _CPU, key=_KEY,
          pruner=_pruner(DELTA_TABLE, lambda m, e, h: 0, lambda m: m["BLOCK_M"]))
@triton.jit
def _delta(X, Y, D, sb, sn, syb, syn, N, C, N_BUCKET, B_BUCKET,
           HEAD: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """D[b, i] = sum_c dY[b, i, c] Y[b, i, c]; X is dY (aligned rows). BLOCK_N is unused (the
    module's kernels share their tile names, so one configuration can be forced on all)."""
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_c = tl.arange(0, HEAD)
    lm = (offs_m[:, None] < N) & (offs_c[None, :] < C)
    g = tl.load(X + b * sb + offs_m[:, None] * sn + offs_c[None, :], mask=lm, other=0.0).to(tl.float32)
    y = tl.load(Y + b * syb + offs_m[:, None] * syn + offs_c[None, :], mask=lm, other=0.0).to(tl.float32)
    tl.store(D + b * N + offs_m, tl.sum(g * y, 1), mask=offs_m < N)


@triton.jit
def _rows(ptr, offs, sn, offs_c, N, CP, EVEN_C: tl.constexpr):
    """Rows ``offs`` of one aligned B x N x CP operand (zeros outside N and CP)."""
    if EVEN_C:
        lm = offs[:, None] < N
    else:
        lm = (offs[:, None] < N) & (offs_c[None, :] < CP)
    return tl.load(ptr + offs[:, None] * sn + offs_c[None, :], mask=lm, other=0.0)


@triton.jit
def _epilogue(dz, acc_x, xb, sn, offs_j, b, M, OX, OM, PM, smb, smn, smc, sob, son, somb, somn, dm_row, N, C,
              HEAD: tl.constexpr, MASK_ROWS: tl.constexpr, ADD_PM: tl.constexpr, ROWS16: tl.constexpr):
    """OX_j = acc_x + dZ_j * M_j and OM_j = dZ_j * X_j (+ PM_j when ADD_PM), dz already scaled;
    a B x C mask gets the block's sum over its rows at row ``dm_row * ROWS16`` of OM instead
    (ROWS16 = block rows / 16). X_j is read
    again here rather than kept live through the loop (32 registers per thread at HEAD 256)."""
    offs_c = tl.arange(0, HEAD)
    out = (offs_j[:, None] < N) & (offs_c[None, :] < C)
    mj = tl.load(M + b * smb + offs_j[:, None] * smn + offs_c[None, :] * smc, mask=out, other=0.0).to(tl.float32)
    tl.store(OX + b * sob + offs_j[:, None] * son + offs_c[None, :], (acc_x + dz * mj).to(OX.dtype.element_ty),
             mask=out)
    xj = tl.load(xb + offs_j[:, None] * sn + offs_c[None, :], mask=out, other=0.0)
    dm = dz * xj.to(tl.float32)
    if MASK_ROWS:
        if ADD_PM:
            dm += tl.load(PM + b * sob + offs_j[:, None] * son + offs_c[None, :], mask=out, other=0.0)
        tl.store(OM + b * somb + offs_j[:, None] * somn + offs_c[None, :], dm.to(OM.dtype.element_ty), mask=out)
    else:  # the block's sum in the first of its BLOCK/16 rows, zeros in the others: every config
        # writes every row of the buffer, so the autotuner's trial runs leave nothing stale
        dm = tl.sum(tl.where(out, dm, 0.0), 0)
        r = tl.arange(0, ROWS16)
        part = tl.where(r[:, None] == 0, dm[None, :], 0.0)
        tl.store(OM + b * somb + (dm_row * ROWS16 + r)[:, None] * somn + offs_c[None, :],
                 part.to(OM.dtype.element_ty), mask=offs_c[None, :] < C)


@autotune(table_configs(SYM_TABLE), _CPU, key=_KEY, pruner=_pruner(SYM_TABLE, sym_shared_bytes, lambda m: m["BLOCK_N"]))
@triton.jit
def _bwd_sym(X, Z, DY, LSE, D, M, DX, DM, sb, sn, smb, smn, smc, sdb, sdn, sdmb, sdmn,
             N, C, CP, scale, scale_log2, N_BUCKET, B_BUCKET,
             HEAD: tl.constexpr, EVEN_C: tl.constexpr, MASK_ROWS: tl.constexpr, PREC: tl.constexpr,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_j = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    xb, zb, gb = X + b * sb, Z + b * sb, DY + b * sb
    offs_c = tl.arange(0, HEAD)
    offs_j = pid_j * BLOCK_N + tl.arange(0, BLOCK_N)
    zj = _rows(zb, offs_j, sn, offs_c, N, CP, EVEN_C)
    xj = _rows(xb, offs_j, sn, offs_c, N, CP, EVEN_C)
    gj = _rows(gb, offs_j, sn, offs_c, N, CP, EVEN_C)
    lse_j = tl.load(LSE + b * N + offs_j, mask=offs_j < N, other=0.0) * 1.4426950408889634
    d_j = tl.load(D + b * N + offs_j, mask=offs_j < N, other=0.0)
    dz = tl.zeros([BLOCK_N, HEAD], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD], dtype=tl.float32)
    for i0 in range(0, N, BLOCK_M):
        offs_i = i0 + tl.arange(0, BLOCK_M)
        zi = _rows(zb, offs_i, sn, offs_c, N, CP, EVEN_C)
        xi = _rows(xb, offs_i, sn, offs_c, N, CP, EVEN_C)
        gi = _rows(gb, offs_i, sn, offs_c, N, CP, EVEN_C)
        lse_i = tl.load(LSE + b * N + offs_i, mask=offs_i < N, other=float("inf")) * 1.4426950408889634
        d_i = tl.load(D + b * N + offs_i, mask=offs_i < N, other=0.0)
        t = tl.dot(zj, tl.trans(zi), input_precision=PREC) * scale_log2
        p_ji = tl.where(offs_i[None, :] < N, tl.exp2(t - lse_j[:, None]), 0.0)
        pt_ij = tl.exp2(t - lse_i[None, :])
        dp_ji = tl.dot(gj, tl.trans(xi), input_precision=PREC)
        dpt_ij = tl.dot(xj, tl.trans(gi), input_precision=PREC)
        g = p_ji * (dp_ji - d_j[:, None]) + pt_ij * (dpt_ij - d_i[None, :])
        dz = tl.dot(g.to(zi.dtype), zi, dz, input_precision=PREC)
        dv = tl.dot(pt_ij.to(gi.dtype), gi, dv, input_precision=PREC)
    _epilogue(dz * scale, dv, xb, sn, offs_j, b, M, DX, DM, DM, smb, smn, smc, sdb, sdn, sdmb, sdmn, pid_j, N, C,
              HEAD, MASK_ROWS, False, BLOCK_N // 16)


@autotune(table_configs(DKV_TABLE), _CPU, key=_KEY,
          pruner=_pruner(DKV_TABLE, dkv_shared_bytes, lambda m: m["BLOCK_N"]))
@triton.jit
def _bwd_dkv(X, Z, DY, LSE, D, M, DXP, DMP, sb, sn, smb, smn, smc, sdb, sdn, sdmb, sdmn,
             N, C, CP, scale, scale_log2, N_BUCKET, B_BUCKET,
             HEAD: tl.constexpr, EVEN_C: tl.constexpr, MASK_ROWS: tl.constexpr, PREC: tl.constexpr,
             BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Per key block j: dV_j, dZ_k,j; writes the float32 partials dV + dZ_k M and dZ_k X (runs first)."""
    pid_j = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    xb, zb, gb = X + b * sb, Z + b * sb, DY + b * sb
    offs_c = tl.arange(0, HEAD)
    offs_j = pid_j * BLOCK_N + tl.arange(0, BLOCK_N)
    zj = _rows(zb, offs_j, sn, offs_c, N, CP, EVEN_C)
    xj = _rows(xb, offs_j, sn, offs_c, N, CP, EVEN_C)
    dk = tl.zeros([BLOCK_N, HEAD], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD], dtype=tl.float32)
    for i0 in range(0, N, BLOCK_M):
        offs_i = i0 + tl.arange(0, BLOCK_M)
        zi = _rows(zb, offs_i, sn, offs_c, N, CP, EVEN_C)
        gi = _rows(gb, offs_i, sn, offs_c, N, CP, EVEN_C)
        lse_i = tl.load(LSE + b * N + offs_i, mask=offs_i < N, other=float("inf")) * 1.4426950408889634
        d_i = tl.load(D + b * N + offs_i, mask=offs_i < N, other=0.0)
        pt = tl.exp2(tl.dot(zj, tl.trans(zi), input_precision=PREC) * scale_log2 - lse_i[None, :])
        dv = tl.dot(pt.to(gi.dtype), gi, dv, input_precision=PREC)
        dpt = tl.dot(xj, tl.trans(gi), input_precision=PREC)
        dst = pt * (dpt - d_i[None, :])
        dk = tl.dot(dst.to(zi.dtype), zi, dk, input_precision=PREC)
    _epilogue(dk * scale, dv, xb, sn, offs_j, b, M, DXP, DMP, DMP, smb, smn, smc, sdb, sdn, sdmb, sdmn, pid_j, N, C,
              HEAD, MASK_ROWS, False, BLOCK_N // 16)


@autotune(table_configs(DQ_TABLE), _CPU, key=_KEY, pruner=_pruner(DQ_TABLE, dq_shared_bytes, lambda m: m["BLOCK_M"]))
@triton.jit
def _bwd_dq(X, Z, DY, LSE, D, M, DXP, DMP, DX, DM, sb, sn, smb, smn, smc, sdb, sdn, sdmb, sdmn, dm_row0,
            N, C, CP, scale, scale_log2, N_BUCKET, B_BUCKET,
            HEAD: tl.constexpr, EVEN_C: tl.constexpr, MASK_ROWS: tl.constexpr, PREC: tl.constexpr,
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """Per query block i: dZ_q,i; adds it to the dK/dV kernel's partials and writes dX and dM."""
    pid_i = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    xb, zb, gb = X + b * sb, Z + b * sb, DY + b * sb
    offs_c = tl.arange(0, HEAD)
    offs_i = pid_i * BLOCK_M + tl.arange(0, BLOCK_M)
    zi = _rows(zb, offs_i, sn, offs_c, N, CP, EVEN_C)
    gi = _rows(gb, offs_i, sn, offs_c, N, CP, EVEN_C)
    lse_i = tl.load(LSE + b * N + offs_i, mask=offs_i < N, other=0.0) * 1.4426950408889634
    d_i = tl.load(D + b * N + offs_i, mask=offs_i < N, other=0.0)
    dq = tl.zeros([BLOCK_M, HEAD], dtype=tl.float32)
    for j0 in range(0, N, BLOCK_N):
        offs_j = j0 + tl.arange(0, BLOCK_N)
        zj = _rows(zb, offs_j, sn, offs_c, N, CP, EVEN_C)
        xj = _rows(xb, offs_j, sn, offs_c, N, CP, EVEN_C)
        s = tl.dot(zi, tl.trans(zj), input_precision=PREC) * scale_log2
        p = tl.where(offs_j[None, :] < N, tl.exp2(s - lse_i[:, None]), 0.0)
        dp = tl.dot(gi, tl.trans(xj), input_precision=PREC)
        ds = p * (dp - d_i[:, None])
        dq = tl.dot(ds.to(zj.dtype), zj, dq, input_precision=PREC)
    part = (offs_i[:, None] < N) & (offs_c[None, :] < C)
    dxp = tl.load(DXP + b * sdb + offs_i[:, None] * sdn + offs_c[None, :], mask=part, other=0.0)
    _epilogue(dq * scale, dxp, xb, sn, offs_i, b, M, DX, DM, DMP, smb, smn, smc, sdb, sdn, sdmb, sdmn,
              dm_row0 // (BLOCK_M // 16) + pid_i, N, C, HEAD, MASK_ROWS, True, BLOCK_M // 16)


# The tile tables travel with the kernels (kernels/compile_check.py compiles the listed configs per HEAD).
_delta.tile_table = DELTA_TABLE
_bwd_sym.tile_table = SYM_TABLE
_bwd_dq.tile_table = DQ_TABLE
_bwd_dkv.tile_table = DKV_TABLE


def onetile_backward(grad_out: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, out: torch.Tensor,
                     lse: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(dX, dM) for C <= 256, dM shaped like the mask (summed over N for a B x C mask)."""
    B, N, C = x.shape
    xp, zp, m3 = prepare(x, mask)
    cp, head = xp.shape[-1], head_tile(C)
    gp = aligned_rows(grad_out, cp)
    out, lse = out.contiguous(), lse.contiguous()
    keys = dict(N_BUCKET=bucket(N), B_BUCKET=bucket(B, 2))
    d = torch.empty((B, N), dtype=torch.float32, device=x.device)
    rows_m = lambda meta: (triton.cdiv(N, meta["BLOCK_M"]), B)  # noqa: E731
    rows_n = lambda meta: (triton.cdiv(N, meta["BLOCK_N"]), B)  # noqa: E731
    _delta[rows_m](gp, out, d, gp.stride(0), gp.stride(1), out.stride(0), out.stride(1), N, C, **keys, HEAD=head)
    dx = torch.empty((B, N, C), dtype=x.dtype, device=x.device)
    mask_rows = mask.dim() == 3
    # a B x C mask: per-block partial sums, BLOCK / 16 rows per block (tiles <= 128 rows), one half
    # for the dK/dV (or symmetric) kernel, one for the dQ kernel
    half = triton.cdiv(N, 128) * 8
    dm = (torch.empty((B, N, C), dtype=x.dtype, device=x.device) if mask_rows
          else torch.zeros((B, 2 * half, C), dtype=torch.float32, device=x.device))
    shared = (m3.stride(0), m3.stride(1), m3.stride(2), dx.stride(0), dx.stride(1), dm.stride(0), dm.stride(1))
    flags = dict(HEAD=head, EVEN_C=cp == head, MASK_ROWS=mask_rows, PREC=dot_precision(x.dtype))
    if head <= SYMMETRIC_MAX_HEAD:
        _bwd_sym[rows_n](xp, zp, gp, lse, d, m3, dx, dm, xp.stride(0), xp.stride(1), *shared,
                         N, C, cp, scale, scale * LOG2E, **keys, **flags)
    else:  # dK/dV first (float32 partials), then dQ adds its part and writes dX, dM
        dxp = torch.empty((B, N, C), dtype=torch.float32, device=x.device)
        dmp = torch.empty_like(dxp) if mask_rows else dm
        part = (m3.stride(0), m3.stride(1), m3.stride(2), dxp.stride(0), dxp.stride(1), dmp.stride(0), dmp.stride(1))
        _bwd_dkv[rows_n](xp, zp, gp, lse, d, m3, dxp, dmp, xp.stride(0), xp.stride(1), *part,
                         N, C, cp, scale, scale * LOG2E, **keys, **flags)
        _bwd_dq[rows_m](xp, zp, gp, lse, d, m3, dxp, dmp, dx, dm, xp.stride(0), xp.stride(1), *shared,
                        0 if mask_rows else half, N, C, cp, scale, scale * LOG2E, **keys, **flags)
    if not mask_rows:
        dm = dm.sum(1).to(x.dtype)
    return dx, dm


__all__ = ["BWD_CONFIGS", "BWD_FLOAT32_SPILLS", "DKV_TABLE", "DQ_TABLE", "SYM_TABLE", "onetile_backward"]
