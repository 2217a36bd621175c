"""Triton kernel for VisNet's sampled projection (one stage of the exact cheaper fusion form).

P[b, o, i, j] = sum_{taps} a_h[i, t] a_w[j, u] * ReLU(scale[o] * sum_c W[o, c] x[b, c, r_t(i), c_u(j)] + shift[o])

i.e. gather only the source rows/columns that bilinear down-sampling (align_corners=False) by an
integer factor reads (rows s*i + s/2 - 1 and s*i + s/2 with weights 1/2, 1/2 for an even factor s;
the single row s*i + (s-1)/2 for an odd one; the same for columns), matmul with the 1x1 projection
weight (C_out x C_in), apply the folded BN (scale, shift), ReLU, and blend: P_s at the target
resolution, B x C_out x H4 x W4 (contiguous). The tap tables come from ``fast.bilinear_taps`` so
the positions and weights are exactly those of ``fast.project_sampled_affine``; they are built once
per (sizes, device) and cached (no per-call host-to-device copy).

Grid: (output-position blocks, C_out blocks, batch). Each program keeps one float32 accumulator per
tap (up to 2 x 2) and loops over C_in in BLOCK_C tiles, loading each weight tile once for all taps;
float32 inputs use ``input_precision="ieee"`` (no TF32). The input may have any strides.

Forward only: the backward (``projection_backward``) is plain PyTorch ops that recompute the sampled
pre-activation (gather + one matmul) and apply the chain rule of the fast form; it is small next to
the forward of the full-resolution form and cuBLAS serves it. Against ``fast.project_sampled_affine``
the forward agrees to max abs error <= 1e-4 in float32 (tests/test_kernels_projection.py).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import torch
import triton
import triton.language as tl

from kernels.autotune import autotune, bucket, make_pruner
from kernels.triton_dots import mm_acc as _mm_acc

# Chosen with the ahead-of-time compile check (benchmarks/compile_kernels.py, sm_90, VisNet's
# stage 3 at 256x128: 1024 channels at 16 x 8 -> 2048 x 8 x 4): the first three compile without
# register spills in float32, float16 and bfloat16 (the earlier list, four BLOCK_O x BLOCK_P
# accumulators over 4 warps, spilled 8-88 bytes); the fourth spills 16 bytes in float32 only.
_GPU = [dict(BLOCK_O=64, BLOCK_P=64, BLOCK_C=32, num_warps=8, num_stages=3),
        dict(BLOCK_O=128, BLOCK_P=32, BLOCK_C=32, num_warps=8, num_stages=3),
        dict(BLOCK_O=64, BLOCK_P=32, BLOCK_C=32, num_warps=4, num_stages=3),
        dict(BLOCK_O=128, BLOCK_P=64, BLOCK_C=32, num_warps=8, num_stages=3)]
# Interpreter: small tiles so the tiny test shapes still cover several C_out / C_in / position tiles.
_CPU = dict(BLOCK_O=32, BLOCK_P=16, BLOCK_C=16, num_warps=4, num_stages=1)


def _shared_bytes(meta: dict, elem: int) -> int:
    """Estimated shared memory: the pipelined weight tile and two gathered input tiles (matches the
    compile check's float32 figures for sm_90 within 15%; over-estimates half precision)."""
    return meta["num_stages"] * elem * meta["BLOCK_C"] * (meta["BLOCK_O"] + 2 * meta["BLOCK_P"])


def _programs(meta: dict, args: dict) -> int:
    b = int(args["OUT"].shape[0])
    return triton.cdiv(int(args["HW4"]), meta["BLOCK_P"]) * triton.cdiv(int(args["C_OUT"]), meta["BLOCK_O"]) * b


#: The fourth configuration spills in float32 (compile check, sm_90): not timed there.
_PRUNE = make_pruner(tensor_arg="X", shared_bytes=_shared_bytes, programs=_programs, float32_excluded=[_GPU[3]])


@triton.jit
def _act(acc, sc, sh):
    return tl.maximum(acc * sc[:, None] + sh[:, None], 0.0)


@autotune(_GPU, _CPU, key=["C_IN", "C_OUT", "HW4", "TH", "TW", "B_BUCKET"], pruner=_PRUNE)
@triton.jit
def _proj_fwd(X, Wt, SCALE, SHIFT, RH, AH, RW, AW, OUT, MEANS,
              sxb, sxc, sxh, sxw, swo, swc,
              C_IN, C_OUT, W4, HW4, inv_hw, B_BUCKET,
              TH: tl.constexpr, TW: tl.constexpr, IEEE: tl.constexpr,
              BLOCK_O: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    pid_p = tl.program_id(0)
    pid_o = tl.program_id(1)
    b = tl.program_id(2).to(tl.int64)
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_o = pid_o * BLOCK_O + tl.arange(0, BLOCK_O)
    mp = offs_p < HW4
    mo = offs_o < C_OUT
    i = offs_p // W4
    j = offs_p % W4
    # source rows / columns of each tap (tables are out x T, row-major) and their blend weights
    r0 = tl.load(RH + i * TH, mask=mp, other=0)
    c0 = tl.load(RW + j * TW, mask=mp, other=0)
    ah0 = tl.load(AH + i * TH, mask=mp, other=0.0)
    aw0 = tl.load(AW + j * TW, mask=mp, other=0.0)
    r1 = r0
    c1 = c0
    ah1 = ah0 * 0.0
    aw1 = aw0 * 0.0
    if TH == 2:
        r1 = tl.load(RH + i * 2 + 1, mask=mp, other=0)
        ah1 = tl.load(AH + i * 2 + 1, mask=mp, other=0.0)
    if TW == 2:
        c1 = tl.load(RW + j * 2 + 1, mask=mp, other=0)
        aw1 = tl.load(AW + j * 2 + 1, mask=mp, other=0.0)
    p00 = r0.to(tl.int64) * sxh + c0.to(tl.int64) * sxw
    p01 = r0.to(tl.int64) * sxh + c1.to(tl.int64) * sxw
    p10 = r1.to(tl.int64) * sxh + c0.to(tl.int64) * sxw
    p11 = r1.to(tl.int64) * sxh + c1.to(tl.int64) * sxw

    acc00 = tl.zeros([BLOCK_O, BLOCK_P], dtype=tl.float32)
    acc01 = tl.zeros([BLOCK_O, BLOCK_P], dtype=tl.float32)
    acc10 = tl.zeros([BLOCK_O, BLOCK_P], dtype=tl.float32)
    acc11 = tl.zeros([BLOCK_O, BLOCK_P], dtype=tl.float32)
    xb = X + b * sxb
    for k0 in range(0, C_IN, BLOCK_C):
        offs_c = k0 + tl.arange(0, BLOCK_C)
        mc = offs_c < C_IN
        w = tl.load(Wt + offs_o[:, None] * swo + offs_c[None, :] * swc, mask=mo[:, None] & mc[None, :], other=0.0)
        w = w.to(X.dtype.element_ty)
        xc = xb + offs_c[:, None].to(tl.int64) * sxc
        mx = mc[:, None] & mp[None, :]
        acc00 = _mm_acc(acc00, w, tl.load(xc + p00[None, :], mask=mx, other=0.0), IEEE)
        if TW == 2:
            acc01 = _mm_acc(acc01, w, tl.load(xc + p01[None, :], mask=mx, other=0.0), IEEE)
        if TH == 2:
            acc10 = _mm_acc(acc10, w, tl.load(xc + p10[None, :], mask=mx, other=0.0), IEEE)
            if TW == 2:
                acc11 = _mm_acc(acc11, w, tl.load(xc + p11[None, :], mask=mx, other=0.0), IEEE)

    sc = tl.load(SCALE + offs_o, mask=mo, other=0.0).to(tl.float32)
    sh = tl.load(SHIFT + offs_o, mask=mo, other=0.0).to(tl.float32)
    row0 = _act(acc00, sc, sh) * aw0[None, :]
    if TW == 2:
        row0 += _act(acc01, sc, sh) * aw1[None, :]
    out = row0 * ah0[None, :]
    if TH == 2:
        row1 = _act(acc10, sc, sh) * aw0[None, :]
        if TW == 2:
            row1 += _act(acc11, sc, sh) * aw1[None, :]
        out += row1 * ah1[None, :]
    dst = OUT + b * C_OUT * HW4 + offs_o[:, None].to(tl.int64) * HW4 + offs_p[None, :]
    tl.store(dst, out.to(OUT.dtype.element_ty), mask=mo[:, None] & mp[None, :])
    # epilogue: this block's share of the map's per-channel mean (MEANS: B x position blocks x C_out);
    # out is 0 at positions past the map (their blend weights load as 0)
    part = tl.sum(out, 1) * inv_hw
    tl.store(MEANS + (b * tl.num_programs(0) + pid_p) * C_OUT + offs_o, part, mask=mo)


@lru_cache(maxsize=64)
def _taps(in_size: int, out_size: int) -> Tuple[int, Tuple[int, ...], Tuple[float, ...]]:
    """(taps per output T, out x T source indices, out x T weights) flattened, from bilinear_taps."""
    from kernels.scale_fusion.fast import bilinear_taps

    idx, mat = bilinear_taps(in_size, out_size)
    rows = [[(idx[k], v) for k, v in enumerate(line) if v != 0.0] for line in mat]
    t = max(len(r) for r in rows)
    src, wts = [], []
    for r in rows:
        r = r + [(r[0][0], 0.0)] * (t - len(r))  # pad (never for integer factors)
        src += [k for k, _ in r]
        wts += [v for _, v in r]
    return t, tuple(src), tuple(wts)


def _make_tables(in_size: int, out_size: int, device: torch.device):
    """(T, source indices int32, weights float32) on ``device``."""
    t, src, wts = _taps(in_size, out_size)
    return (t, torch.tensor(src, dtype=torch.int32, device=device),
            torch.tensor(wts, dtype=torch.float32, device=device))


@lru_cache(maxsize=128)
def _cached_tables(in_size: int, out_size: int, device: torch.device):
    """:func:`_make_tables` built once per (sizes, device), outside inference mode, so an eval
    forward after the first makes no host-to-device copy for them."""
    with torch.inference_mode(False), torch.no_grad():
        return _make_tables(in_size, out_size, device)


def _tables(in_size: int, out_size: int, device: torch.device):
    """The cached tables; while tracing, graph constants that are never cached (see
    ``fast._plan_tensors``)."""
    if torch.compiler.is_compiling():
        return _make_tables(in_size, out_size, device)
    return _cached_tables(in_size, out_size, device)


def projection_forward(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                       size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Triton: (P, its per-channel spatial mean) with P = resize(ReLU(scale * (weight @ x) + shift)) at
    ``size``, from the sampled positions only; the mean comes from the kernel's epilogue (per position
    block, summed here when the map spans several blocks), so no separate pass reads P for it.

    x: B x C_in x H x W (any strides, H and W integer multiples of ``size``); weight: C_out x C_in;
    scale, shift: C_out. Returns B x C_out x size[0] x size[1] (contiguous) and B x C_out, in x's dtype.
    """
    from kernels.scale_fusion.fast import sampling_plan  # the same validation as the PyTorch form

    bsz, c_in, h, w_ = (int(s) for s in x.shape)
    h4, w4 = int(size[0]), int(size[1])
    if h % h4 or w_ % w4:
        sampling_plan((h, w_), (h4, w4), x.device, x.dtype)  # raises InvalidInputError
    wt = weight.reshape(weight.shape[0], -1)
    c_out = int(wt.shape[0])
    if int(wt.shape[1]) != c_in:
        raise ValueError(f"projection weight has {wt.shape[1]} input channels, x has {c_in}")
    th, rh, ah = _tables(h, h4, x.device)
    tw, rw, aw = _tables(w_, w4, x.device)
    out = torch.empty((bsz, c_out, h4, w4), dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out, out.new_zeros((bsz, c_out))
    hw4 = h4 * w4
    # partial means, one row per (batch, position block): sized for the smallest BLOCK_P (16 or a config's)
    min_block = min([16] + [c.kwargs["BLOCK_P"] for c in _proj_fwd.configs])
    partial = torch.empty((bsz * triton.cdiv(hw4, min_block) * c_out,), dtype=torch.float32, device=x.device)
    blocks = {}

    def grid(meta):
        blocks["n"] = triton.cdiv(hw4, meta["BLOCK_P"])
        if bsz * blocks["n"] * c_out > partial.numel():
            raise ValueError(f"BLOCK_P={meta['BLOCK_P']} is below the smallest block projection_forward supports")
        return (blocks["n"], triton.cdiv(c_out, meta["BLOCK_O"]), bsz)

    _proj_fwd[grid](x, wt, scale.contiguous(), shift.contiguous(), rh, ah, rw, aw, out, partial,
                    *x.stride(), *wt.stride(), c_in, c_out, w4, hw4, 1.0 / hw4, bucket(bsz, 2),
                    TH=th, TW=tw, IEEE=x.dtype == torch.float32)
    nblk = blocks["n"]
    parts = partial[: bsz * nblk * c_out].view(bsz, nblk, c_out)
    means = parts[:, 0] if nblk == 1 else parts.sum(1)
    return out, means.to(x.dtype)


def projection_flops(batch: int, c_in: int, c_out: int, size: Tuple[int, int], factor: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of the sampled projection of one stage."""
    taps = (2 if factor % 2 == 0 else 1) ** 2
    return 2.0 * batch * c_out * c_in * size[0] * size[1] * taps
