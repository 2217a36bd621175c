"""Rows of ``benchmarks/bench_kernels.py`` for VisNet's scale fusion, and its multiply-add count.

:func:`fusion_macs` counts the fusion forward in the paper's order and in the exact cheaper form
(FlopCounterMode, one multiply-add counted once; runs on the CPU). On a GPU, :func:`bench_fusion`
times the whole fusion and each stage's sampled projection, :func:`bench_weighted_sum` the
memory-bound weighted sum + GAP against the device's copy bandwidth.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
from torch import nn

from edge_reid.bench.cuda_timing import cuda_median_ms
from edge_reid.bench.kernel_rows import Peaks, Row, fraction_of_bandwidth, fwd_bwd, kernel_row
from edge_reid.models.visnet_fusion import ScaleAttentionFusion


def _fusion_setup(batch: int, input_hw: Tuple[int, int], device: str,
                  dtype: torch.dtype = torch.float32) -> Tuple[List[torch.Tensor], nn.Module, nn.Module]:
    h4, w4 = input_hw[0] // 32, input_hw[1] // 32
    chs, factors = (256, 512, 1024, 2048), (8, 4, 2, 1)
    feats = [torch.randn(batch, c, h4 * f, w4 * f, device=device, dtype=dtype).relu().requires_grad_()
             for c, f in zip(chs, factors)]
    ref = ScaleAttentionFusion(fusion_impl="reference").to(device).train()
    fast = ScaleAttentionFusion(fusion_impl="fast").to(device).train()
    fast.load_state_dict(ref.state_dict())
    return feats, ref, fast


def fusion_macs(input_hw: Tuple[int, int] = (256, 128)) -> Tuple[float, float]:
    """Multiply-adds of the fusion forward (eval, batch 1): (paper order, exact cheaper form)."""
    from torch.utils.flop_counter import FlopCounterMode

    feats, ref, fast = _fusion_setup(1, input_hw, "cpu")
    ref.eval()
    fast.eval()
    out = []
    for m in (ref, fast):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            m(*feats)
        out.append(counter.get_total_flops() / 2.0)
    return out[0], out[1]


def bench_fusion(shapes: Sequence[Tuple[int, Tuple[int, int]]], rows: List[Row], peaks: Peaks) -> None:
    """VisNet's whole fusion (forward + backward of its GAP, training mode), and each stage's
    sampled projection alone (eval forward), against the paper order / PyTorch form."""
    from kernels.scale_fusion.fast import project_sampled_affine
    from kernels.scale_fusion.triton_projection import projection_flops, projection_forward

    for b, hw in shapes:
        feats, ref, fast = _fusion_setup(b, hw, "cuda")
        compiled = torch.compile(ref.fuse)
        variants = {"eager": lambda: ref.fuse(*feats)[2], "compile": lambda: compiled(*feats)[2],
                    "triton": lambda: fast.fuse(*feats)[2]}
        times = {k: cuda_median_ms(fwd_bwd(fn, feats)) for k, fn in variants.items()}
        rows.append(kernel_row("visnet_fusion_fwd_bwd", f"B{b} input {hw[0]}x{hw[1]}", times))
        h4, w4 = hw[0] // 32, hw[1] // 32
        for cin, fac in ((256, 8), (1024, 2)):
            x = torch.randn(b, cin, h4 * fac, w4 * fac, device="cuda")
            wt, sc, sh = (torch.randn(2048, cin, device="cuda") / cin ** 0.5, torch.rand(2048, device="cuda") + 0.5,
                          torch.randn(2048, device="cuda"))
            comp_p = torch.compile(project_sampled_affine)
            with torch.no_grad():
                t = {"eager": cuda_median_ms(lambda: project_sampled_affine(x, wt, sc, sh, (h4, w4))),
                     "compile": cuda_median_ms(lambda: comp_p(x, wt, sc, sh, (h4, w4))),
                     "triton": cuda_median_ms(lambda: projection_forward(x, wt, sc, sh, (h4, w4))[0])}
            tflops = projection_flops(b, cin, 2048, (h4, w4), fac) / (t["triton"] * 1e-3) / 1e12
            rows.append(kernel_row("sampled_projection_fwd", f"B{b} {cin}->2048 x{fac} to {h4}x{w4}", t,
                                   f"{tflops:.1f} TFLOP/s"))


def bench_weighted_sum(batches: Sequence[int], hw: Tuple[int, int], rows: List[Row], peaks: Peaks) -> None:
    """The memory-bound weighted sum + GAP of 4 maps (B x 2048 x h x w, float32): the device's copy
    bandwidth first (a 1 GiB copy, read + write), then the forward alone and forward + backward
    (fixed random output gradients), each against eager and torch.compile of the PyTorch form."""
    from kernels.scale_fusion.op import weighted_scale_sum, weighted_sum_reference

    src = torch.empty(2**28, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = cuda_median_ms(lambda: dst.copy_(src))
    copy_gbs = 2 * src.numel() * 4 / (copy_ms * 1e-3) / 1e9
    del src, dst
    rows.append(kernel_row("device_copy", "1 GiB float32", {"eager": copy_ms}, f"{copy_gbs:.0f} GB/s",
                           fraction_of_bandwidth(copy_gbs, peaks)))
    h4, w4 = hw[0] // 32, hw[1] // 32
    impls = {"eager": weighted_sum_reference, "compile": torch.compile(weighted_sum_reference),
             "triton": weighted_scale_sum}
    for b in batches:
        maps = [torch.randn(b, 2048, h4, w4, device="cuda", requires_grad=True) for _ in range(4)]
        w = torch.rand(b, 4, device="cuda", requires_grad=True)
        grads = (torch.randn(b, 2048, h4, w4, device="cuda"), torch.randn(b, 2048, device="cuda"))
        with torch.no_grad():
            fwd = {k: cuda_median_ms(lambda f=f: f(maps, w)) for k, f in impls.items()}
        both = {k: cuda_median_ms(lambda f=f: torch.autograd.grad(f(maps, w), maps + [w], grads))
                for k, f in impls.items()}
        # bytes in units of one map: forward reads 4 maps and writes 1; the backward reads 4 maps and
        # the fused map's gradient and writes 4 map gradients (GAP, weights negligible)
        for op, t, units in (("weighted_sum_gap_fwd", fwd, 5), ("weighted_sum_gap_fwd_bwd", both, 14)):
            gbs = units * 4 * b * 2048 * h4 * w4 / (t["triton"] * 1e-3) / 1e9
            rows.append(kernel_row(op, f"B{b}x2048x{h4}x{w4}x4", t, f"{gbs:.0f} GB/s ({gbs / copy_gbs:.0%} of copy)",
                                   fraction_of_bandwidth(gbs, peaks)))


__all__ = ["bench_fusion", "bench_weighted_sum", "fusion_macs"]
