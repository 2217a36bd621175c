"""One-tile Triton forward of masked-channel attention (C <= 256), shaped for Hopper's tensor cores.

Grid: query blocks x batch. Each program loads its BLOCK_M x HEAD query tile of Z = X * M once,
then streams the key blocks: one K = Z_j tile and one V = X_j tile per step, the logits
``Z_i Z_j^T`` as one dot over the whole channel tile (HEAD / 16 chained HGMMA on sm_90), online
softmax in base 2, ``P X_j`` into a BLOCK_M x HEAD float32 accumulator. Stores Y (the real C
channels) and the natural-log logsumexp of every row, the only softmax state the backward needs.
Operands come from ``triton_common.prepare`` (aligned, zero-padded rows).
"""

from __future__ import annotations

from typing import Tuple

import torch
import triton
import triton.language as tl

from kernels.autotune import autotune, bucket
from kernels.masked_attention.triton_common import (
    LOG2E, dot_precision, head_tile, prepare, skip_before_hopper, table_configs, table_pruner)

_W8_128 = dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=2)
_W4_64 = dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=2)
_W4_64_N32 = dict(BLOCK_M=64, BLOCK_N=32, num_warps=4, num_stages=2)
_W8_128_S3 = dict(BLOCK_M=128, BLOCK_N=64, num_warps=8, num_stages=3)
_W4_64_S3 = dict(BLOCK_M=64, BLOCK_N=64, num_warps=4, num_stages=3)

#: Tile table (HEAD -> at most a few candidates; the pruner times at most two). sm_90 wgmma needs
#: 64-row slabs per warpgroup: BLOCK_M = 64 x (num_warps / 4). At HEAD = 256 the 128-row tile is
#: the spec's choice (16 chained HGMMA.64x64x16 for the logits, PV as HGMMA.64x256x16); the 64-row,
#: 32-key tile is the one that fits float32 within the shared memory.
FWD_TABLE = {
    16: [_W8_128_S3, _W4_64_S3],
    32: [_W8_128_S3, _W4_64_S3],
    64: [_W8_128_S3, _W4_64_S3],
    128: [_W8_128, _W4_64],
    256: [_W8_128, _W4_64_N32],
}
FWD_CONFIGS = table_configs(FWD_TABLE)
_CPU = dict(BLOCK_M=32, BLOCK_N=32, num_warps=4, num_stages=1)  # the interpreter: few, small tiles


def fwd_shared_bytes(meta: dict, elem: int, head: int = 256) -> int:
    """Shared memory estimate: the Q tile plus the pipelined K and V tiles."""
    return elem * head * (meta["BLOCK_M"] + 2 * meta["num_stages"] * meta["BLOCK_N"])


#: Configurations not timed in float32 (they spill there; kernels/compile_check.py, sm_90).
FWD_FLOAT32_SPILLS: list = []
#: Not run before sm_90: the 128-row HEAD-256 tile spills 16 bytes on sm_87 (compile check).
FWD_PRE_HOPPER_SPILLS = [_W8_128]
_PRUNE = skip_before_hopper(
    table_pruner(FWD_TABLE, fwd_shared_bytes, rows=lambda m: m["BLOCK_M"], float32_excluded=FWD_FLOAT32_SPILLS),
    FWD_PRE_HOPPER_SPILLS)


@autotune(FWD_CONFIGS, _CPU, key=["HEAD", "N_BUCKET", "B_BUCKET"], pruner=_PRUNE)
@triton.jit
def _fwd(X, Z, O, LSE, sb, sn, N, C, CP, sob, son, scale_log2, N_BUCKET, B_BUCKET,
         HEAD: tl.constexpr, EVEN_C: tl.constexpr, PREC: tl.constexpr,
         BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_m = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    xb = X + b * sb
    zb = Z + b * sb
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_c = tl.arange(0, HEAD)
    if EVEN_C:
        cm = offs_c[None, :] < HEAD
    else:
        cm = offs_c[None, :] < CP
    q = tl.load(zb + offs_m[:, None] * sn + offs_c[None, :], mask=(offs_m[:, None] < N) & cm, other=0.0)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        rows = (offs_n[:, None] < N) & cm
        k = tl.load(zb + offs_n[:, None] * sn + offs_c[None, :], mask=rows, other=0.0)
        v = tl.load(xb + offs_n[:, None] * sn + offs_c[None, :], mask=rows, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=PREC)
        s = tl.where(offs_n[None, :] < N, s * scale_log2, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(v.dtype), v, acc, input_precision=PREC)
        m_i = m_new
    acc = acc / l_i[:, None]
    ob = O + b * sob
    tl.store(ob + offs_m[:, None] * son + offs_c[None, :], acc.to(O.dtype.element_ty),
             mask=(offs_m[:, None] < N) & (offs_c[None, :] < C))
    lse = (m_i + tl.log2(l_i)) * 0.6931471805599453
    tl.store(LSE + b * N + offs_m, lse, mask=offs_m < N)


# The tile tables travel with the kernels (kernels/compile_check.py compiles the listed configs per HEAD).
_fwd.tile_table = FWD_TABLE


def onetile_forward(x: torch.Tensor, mask: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(Y as B x N x C contiguous, natural-log lse as B x N float32) for C <= 256."""
    B, N, C = x.shape
    xp, zp, _ = prepare(x, mask)
    cp, head = xp.shape[-1], head_tile(C)
    out = torch.empty((B, N, C), dtype=x.dtype, device=x.device)
    lse = torch.empty((B, N), dtype=torch.float32, device=x.device)
    grid = lambda meta: (triton.cdiv(N, meta["BLOCK_M"]), B)  # noqa: E731
    _fwd[grid](xp, zp, out, lse, xp.stride(0), xp.stride(1), N, C, cp, out.stride(0), out.stride(1),
               scale * LOG2E, bucket(N), bucket(B, 2),
               HEAD=head, EVEN_C=cp == head, PREC=dot_precision(x.dtype))
    return out, lse


__all__ = ["FWD_CONFIGS", "FWD_FLOAT32_SPILLS", "FWD_TABLE", "fwd_shared_bytes", "onetile_forward"]
