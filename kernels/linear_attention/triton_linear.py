"""Triton kernels for DCS-Attention's linear form, mask applied on load (X*M never in memory).

Y = (X*M) W, W = scale * (X_s*M_s)^T X_s (C x C per sample); X_s, M_s the key tokens (h, w multiples
of ``key_stride``; key j at row (j // W_s) * stride * W + (j % W_s) * stride), read in place, never
gathered. X and M: B x N x C, any strides (the B x C x H x W map seen as tokens, a stride-0 mask).

Forward: ``_la_gram`` reduces W over the key tokens in C-tiles (the tokens split in SPLIT chunks for
small batches, partials added by one deterministic torch sum: two stages, no atomics), then
``_la_apply`` forms Y (tensor-core dots, float32 accumulation; IEEE dots for float32, no TF32).

Backward, with G = scale * (X*M)^T dY (``_la_gram`` over all tokens):
  dZ = dY W^T (all tokens), dZ_s = X_s G^T and dX_s(V) = (X_s*M_s) G (key tokens, ``_la_key_grad``),
  dX = dZ * M + [key] (dZ_s * M_s + dX_s(V)),  dM = dZ * X + [key] dZ_s * X_s,
the key part written first (float32, N_s x C) and added in ``_la_apply``'s epilogue, so dX and dM
are written once, in the input dtype.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import triton
import triton.language as tl

from kernels.autotune import DEFAULT_SMS, autotune, bucket, make_pruner
from kernels.triton_dots import mm_acc as _mm_acc

# Two configurations per kernel and channel tile (:func:`channel_tile`, told apart by (BLOCK_I, BLOCK_J):
# :data:`TILES`), chosen with the compile check (sm_90 / sm_87, fp32 / fp16 / bf16, DCS and ragged
# shapes: no spills; num_stages 3 and 128-wide row-kernel output tiles spilled in the backward).
_GRAM_GPU = [dict(BLOCK_I=32, BLOCK_J=32, BLOCK_R=64, num_warps=4, num_stages=2),
             dict(BLOCK_I=32, BLOCK_J=32, BLOCK_R=32, num_warps=4, num_stages=2),
             dict(BLOCK_I=64, BLOCK_J=64, BLOCK_R=64, num_warps=4, num_stages=2),
             dict(BLOCK_I=64, BLOCK_J=64, BLOCK_R=32, num_warps=4, num_stages=2),
             dict(BLOCK_I=64, BLOCK_J=128, BLOCK_R=32, num_warps=4, num_stages=2),
             dict(BLOCK_I=64, BLOCK_J=128, BLOCK_R=32, num_warps=8, num_stages=2)]
_ROWS_GPU = [dict(BLOCK_N=64, BLOCK_I=32, BLOCK_J=32, num_warps=4, num_stages=2),
             dict(BLOCK_N=32, BLOCK_I=32, BLOCK_J=32, num_warps=4, num_stages=2),
             dict(BLOCK_N=64, BLOCK_I=64, BLOCK_J=64, num_warps=4, num_stages=2),
             dict(BLOCK_N=32, BLOCK_I=64, BLOCK_J=64, num_warps=4, num_stages=2),
             dict(BLOCK_N=64, BLOCK_I=32, BLOCK_J=64, num_warps=8, num_stages=2),
             dict(BLOCK_N=32, BLOCK_I=32, BLOCK_J=64, num_warps=4, num_stages=2)]
#: (BLOCK_I, BLOCK_J) of each channel tile class: Gram kernel, row kernels (apply, key gradient).
TILES = {"gram": {32: (32, 32), 64: (64, 64), 128: (64, 128)},
         "rows": {32: (32, 32), 64: (64, 64), 128: (32, 64)}}
# Interpreter: 16-wide tiles (the smallest tl.dot), so tiny odd test shapes still span several tiles.
_GRAM_CPU = dict(BLOCK_I=16, BLOCK_J=16, BLOCK_R=16, num_warps=4, num_stages=1)
_ROWS_CPU = dict(BLOCK_N=16, BLOCK_I=16, BLOCK_J=16, num_warps=4, num_stages=1)


def channel_tile(c: int) -> int:
    """The channel tile class of C: 32 (C <= 32), 64 (C <= 64) or 128."""
    return 32 if c <= 32 else 64 if c <= 64 else 128


def config_fits(meta: dict, channels: int) -> bool:
    """Whether a configuration (its block sizes) belongs to the channel tile class of ``channels``."""
    family = "gram" if "BLOCK_R" in meta else "rows"
    return (meta["BLOCK_I"], meta["BLOCK_J"]) == TILES[family][channel_tile(channels)]


def _fits(meta: dict, args: dict) -> bool:
    return config_fits(meta, int(args["C"]))


def _gram_shared(meta: dict, elem: int) -> int:
    return meta["num_stages"] * elem * meta["BLOCK_R"] * (meta["BLOCK_I"] + meta["BLOCK_J"])


def _rows_shared(meta: dict, elem: int) -> int:
    return meta["num_stages"] * elem * meta["BLOCK_I"] * (meta["BLOCK_N"] + 2 * meta["BLOCK_J"])


def _gram_programs(meta: dict, args: dict) -> int:
    return triton.cdiv(int(args["C"]), meta["BLOCK_I"]) * triton.cdiv(int(args["C"]), meta["BLOCK_J"]) * int(args["PROGRAMS_B"])


def _rows_programs(meta: dict, args: dict) -> int:
    return triton.cdiv(int(args["R"]), meta["BLOCK_N"]) * triton.cdiv(int(args["C"]), meta["BLOCK_J"]) * args["X"].shape[0]


_GRAM_PRUNE = make_pruner(tensor_arg="X", shared_bytes=_gram_shared, programs=_gram_programs, fits=_fits)
_ROWS_PRUNE = make_pruner(tensor_arg="X", shared_bytes=_rows_shared, programs=_rows_programs, fits=_fits)


@triton.jit
def _key_rows(offs, KW, W, STRIDE):
    """Token row of key j: (j // W_s) * stride * W + (j % W_s) * stride."""
    return (offs // KW) * (STRIDE * W) + (offs % KW) * STRIDE


@autotune(_GRAM_GPU, _GRAM_CPU, key=["R_BUCKET", "C_BUCKET", "B_BUCKET"], pruner=_GRAM_PRUNE)
@triton.jit
def _la_gram(X, M, V, OUT, sxb, sxn, sxc, smb, smn, smc, svb, svn, svc,
             R, C, KW, W, STRIDE, CHUNK, SPLIT, scale, PROGRAMS_B, R_BUCKET, C_BUCKET, B_BUCKET,
             KEYS: tl.constexpr, IEEE: tl.constexpr,
             BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_R: tl.constexpr):
    """OUT[b * SPLIT + sp] = scale * sum over rows of chunk sp of (X*M)[r, i]^T V[r, j] (float32)."""
    pid_i = tl.program_id(0)
    pid_j = tl.program_id(1)
    pid = tl.program_id(2)
    b = (pid // SPLIT).to(tl.int64)
    sp = pid % SPLIT
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    offs_j = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
    mi = offs_i < C
    mj = offs_j < C
    xb = X + b * sxb
    mb = M + b * smb
    vb = V + b * svb
    acc = tl.zeros([BLOCK_I, BLOCK_J], dtype=tl.float32)
    r_lo = sp * CHUNK
    r_hi = tl.minimum(r_lo + CHUNK, R)
    for r0 in range(r_lo, r_hi, BLOCK_R):
        offs_r = r0 + tl.arange(0, BLOCK_R)
        mr = offs_r < r_hi
        if KEYS:
            rows = _key_rows(offs_r, KW, W, STRIDE)
        else:
            rows = offs_r
        la = mr[:, None] & mi[None, :]
        z = tl.load(xb + rows[:, None] * sxn + offs_i[None, :] * sxc, mask=la, other=0.0)
        z = z * tl.load(mb + rows[:, None] * smn + offs_i[None, :] * smc, mask=la, other=0.0)
        v = tl.load(vb + rows[:, None] * svn + offs_j[None, :] * svc, mask=mr[:, None] & mj[None, :], other=0.0)
        acc = _mm_acc(acc, tl.trans(z), v, IEEE)
    dst = OUT + pid.to(tl.int64) * C * C + offs_i[:, None] * C + offs_j[None, :]
    tl.store(dst, acc * scale, mask=mi[:, None] & mj[None, :])


@autotune(_ROWS_GPU, _ROWS_CPU, key=["R_BUCKET", "C_BUCKET", "B_BUCKET"], pruner=_ROWS_PRUNE)
@triton.jit
def _la_apply(A, M, X, S, KDX, KDM, OUT, DM, sab, san, sac, smb, smn, smc, sxb, sxn, sxc, ssb, ssi, ssj,
              R, C, W, KW, NS, STRIDE, R_BUCKET, C_BUCKET, B_BUCKET,
              BACKWARD: tl.constexpr, IEEE: tl.constexpr,
              BLOCK_N: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    """Forward: OUT = (A*M) S. Backward (A = dY, S = W^T): dZ = A S, OUT = dX, DM = dM (see the module doc)."""
    pid_n = tl.program_id(0)
    pid_j = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_j = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
    mn = offs_n < R
    mj = offs_j < C
    rows = offs_n  # int32 offsets within a sample (N C < 2^31); the batch offset is int64
    ab = A + b * sab
    mb = M + b * smb
    sb = S + b * ssb
    acc = tl.zeros([BLOCK_N, BLOCK_J], dtype=tl.float32)
    for i0 in range(0, C, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        mi = offs_i < C
        la = mn[:, None] & mi[None, :]
        a = tl.load(ab + rows[:, None] * san + offs_i[None, :] * sac, mask=la, other=0.0)
        if not BACKWARD:
            a = a * tl.load(mb + rows[:, None] * smn + offs_i[None, :] * smc, mask=la, other=0.0)
        s = tl.load(sb + offs_i[:, None] * ssi + offs_j[None, :] * ssj, mask=mi[:, None] & mj[None, :], other=0.0)
        acc = _mm_acc(acc, a, s, IEEE)
    lo = mn[:, None] & mj[None, :]
    dst = rows[:, None] * C + offs_j[None, :]
    ob = OUT + b * R * C
    if BACKWARD:
        h = offs_n // W
        w = offs_n % W
        key = mn & (h % STRIDE == 0) & (w % STRIDE == 0)
        kidx = ((h // STRIDE) * KW + w // STRIDE)[:, None] * C + offs_j[None, :]
        lk = key[:, None] & mj[None, :]
        mask_j = tl.load(mb + rows[:, None] * smn + offs_j[None, :] * smc, mask=lo, other=0.0).to(tl.float32)
        dx = acc * mask_j + tl.load(KDX + b * NS * C + kidx, mask=lk, other=0.0)
        tl.store(ob + dst, dx.to(OUT.dtype.element_ty), mask=lo)
        x_j = tl.load(X + b * sxb + rows[:, None] * sxn + offs_j[None, :] * sxc, mask=lo, other=0.0).to(tl.float32)
        dm = acc * x_j + tl.load(KDM + b * NS * C + kidx, mask=lk, other=0.0)
        tl.store(DM + b * R * C + dst, dm.to(DM.dtype.element_ty), mask=lo)
    else:
        tl.store(ob + dst, acc.to(OUT.dtype.element_ty), mask=lo)


@autotune(_ROWS_GPU, _ROWS_CPU, key=["R_BUCKET", "C_BUCKET", "B_BUCKET"], pruner=_ROWS_PRUNE)
@triton.jit
def _la_key_grad(X, M, G, KDX, KDM, sxb, sxn, sxc, smb, smn, smc,
                 R, C, KW, W, STRIDE, R_BUCKET, C_BUCKET, B_BUCKET,
                 IEEE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):
    """Key tokens (R = N_s of them): KDX = (X_s G^T) * M_s + (X_s*M_s) G, KDM = (X_s G^T) * X_s (float32)."""
    pid_n = tl.program_id(0)
    pid_j = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    offs_k = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_j = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
    mk = offs_k < R
    mj = offs_j < C
    rows = _key_rows(offs_k, KW, W, STRIDE)
    xb = X + b * sxb
    mb = M + b * smb
    gb = G + b * C * C
    lo = mk[:, None] & mj[None, :]
    dst = offs_k[:, None] * C + offs_j[None, :]
    kdm_b = KDM + b * R * C
    kdx_b = KDX + b * R * C
    # two passes over the channels, one accumulator live at a time (registers): first X_s G^T ...
    acc = tl.zeros([BLOCK_N, BLOCK_J], dtype=tl.float32)
    for i0 in range(0, C, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        mi = offs_i < C
        x = tl.load(xb + rows[:, None] * sxn + offs_i[None, :] * sxc, mask=mk[:, None] & mi[None, :], other=0.0)
        g_t = tl.load(gb + offs_j[None, :] * C + offs_i[:, None], mask=mi[:, None] & mj[None, :], other=0.0)
        acc = _mm_acc(acc, x, g_t, IEEE)  # G^T[i, j] = G[j, i]
    x_j = tl.load(xb + rows[:, None] * sxn + offs_j[None, :] * sxc, mask=lo, other=0.0).to(tl.float32)
    tl.store(kdm_b + dst, acc * x_j, mask=lo)
    acc = acc * tl.load(mb + rows[:, None] * smn + offs_j[None, :] * smc, mask=lo, other=0.0).to(tl.float32)
    # ... then + (X_s*M_s) G on top
    for i0 in range(0, C, BLOCK_I):
        offs_i = i0 + tl.arange(0, BLOCK_I)
        mi = offs_i < C
        la = mk[:, None] & mi[None, :]
        z = tl.load(xb + rows[:, None] * sxn + offs_i[None, :] * sxc, mask=la, other=0.0)
        z = z * tl.load(mb + rows[:, None] * smn + offs_i[None, :] * smc, mask=la, other=0.0)
        g = tl.load(gb + offs_i[:, None] * C + offs_j[None, :], mask=mi[:, None] & mj[None, :], other=0.0)
        acc = _mm_acc(acc, z, g, IEEE)
    tl.store(kdx_b + dst, acc, mask=lo)


def key_grid(size: Tuple[int, int], stride: int) -> Tuple[int, int]:
    """(key rows H_s, key columns W_s) of an H x W map at ``stride`` (as x[..., ::s, ::s])."""
    return triton.cdiv(int(size[0]), stride), triton.cdiv(int(size[1]), stride)


def split_rows(rows: int, batch: int, channels: int, split: Optional[int] = None) -> Tuple[int, int]:
    """(rows per chunk, chunks) of a Gram reduction: enough programs for ~2 per SM on small batches,
    chunks of >= 256 rows (a multiple of 128); ``split`` forces the number of chunks."""
    if split is None:
        tiles = triton.cdiv(channels, 64) ** 2
        split = max(1, min(triton.cdiv(2 * DEFAULT_SMS, batch * tiles), triton.cdiv(rows, 256)))
        chunk = triton.cdiv(triton.cdiv(rows, split), 128) * 128
    else:
        chunk = triton.cdiv(rows, max(1, int(split)))
    return chunk, triton.cdiv(rows, chunk)


def _gram(x: torch.Tensor, m: torch.Tensor, v: torch.Tensor, rows: int, keys: bool, size: Tuple[int, int],
          stride: int, scale: float, split: Optional[int]) -> torch.Tensor:
    """scale * (X*M)^T V over the key tokens (``keys``) or all tokens: B x C x C float32."""
    bsz, _, c = x.shape
    kw = key_grid(size, stride)[1]
    chunk, chunks = split_rows(rows, bsz, c, split)
    partial = torch.empty((bsz * chunks, c, c), dtype=torch.float32, device=x.device)
    grid = lambda meta: (triton.cdiv(c, meta["BLOCK_I"]), triton.cdiv(c, meta["BLOCK_J"]), bsz * chunks)  # noqa: E731
    _la_gram[grid](x, m, v, partial, *x.stride(), *m.stride(), *v.stride(), rows, c, kw, int(size[1]), stride,
                   chunk, chunks, float(scale), bsz * chunks, bucket(rows), bucket(c), bucket(bsz, 2),
                   KEYS=keys, IEEE=x.dtype == torch.float32)
    out = partial.view(bsz, chunks, c, c)
    return out[:, 0] if chunks == 1 else out.sum(1)


def mla_forward(x: torch.Tensor, m: torch.Tensor, size: Tuple[int, int], stride: int, scale: float,
                split: Optional[int] = None) -> torch.Tensor:
    """Y = (X*M) (scale (X_s*M_s)^T X_s), B x N x C contiguous in x's dtype."""
    bsz, n, c = x.shape
    kh, kw = key_grid(size, stride)
    w = _gram(x, m, x, kh * kw, True, size, stride, scale, split).to(x.dtype)
    out = torch.empty((bsz, n, c), dtype=x.dtype, device=x.device)
    grid = lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), triton.cdiv(c, meta["BLOCK_J"]), bsz)  # noqa: E731
    _la_apply[grid](x, m, x, w, out, out, out, out, *x.stride(), *m.stride(), *x.stride(), *w.stride(),
                    n, c, int(size[1]), kw, kh * kw, stride, bucket(n), bucket(c), bucket(bsz, 2),
                    BACKWARD=False, IEEE=x.dtype == torch.float32)
    return out


def mla_backward(grad: torch.Tensor, x: torch.Tensor, m: torch.Tensor, size: Tuple[int, int], stride: int,
                 scale: float, split: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(dX, dM), both B x N x C contiguous in x's dtype."""
    bsz, n, c = x.shape
    kh, kw = key_grid(size, stride)
    ns = kh * kw
    ieee = x.dtype == torch.float32
    w = _gram(x, m, x, ns, True, size, stride, scale, split).to(x.dtype)
    g = _gram(x, m, grad, n, False, size, stride, scale, split).to(x.dtype).contiguous()
    kdx = torch.empty((bsz, ns, c), dtype=torch.float32, device=x.device)
    kdm = torch.empty_like(kdx)
    grid_k = lambda meta: (triton.cdiv(ns, meta["BLOCK_N"]), triton.cdiv(c, meta["BLOCK_J"]), bsz)  # noqa: E731
    _la_key_grad[grid_k](x, m, g, kdx, kdm, *x.stride(), *m.stride(), ns, c, kw, int(size[1]), stride,
                         bucket(ns), bucket(c), bucket(bsz, 2), IEEE=ieee)
    dx = torch.empty((bsz, n, c), dtype=x.dtype, device=x.device)
    dm = torch.empty_like(dx)
    grid = lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), triton.cdiv(c, meta["BLOCK_J"]), bsz)  # noqa: E731
    _la_apply[grid](grad, m, x, w, kdx, kdm, dx, dm, *grad.stride(), *m.stride(), *x.stride(),
                    w.stride(0), w.stride(2), w.stride(1), n, c, int(size[1]), kw, ns, stride,
                    bucket(n), bucket(c), bucket(bsz, 2), BACKWARD=True, IEEE=ieee)
    return dx, dm


__all__ = ["TILES", "channel_tile", "config_fits", "key_grid", "mla_backward", "mla_forward", "split_rows"]
