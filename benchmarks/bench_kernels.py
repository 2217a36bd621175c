"""Benchmark the Triton kernels against eager PyTorch and torch.compile (spec: kernels.md).

Per shape: eager, torch.compile and Triton times (attention: every path of
kernels/masked_attention/dispatch.py, one row each, and the dispatcher's timed pick; the linear DCS
form at the DCS models' attention shapes, edge_reid/bench/linear_attention_rows.py) (median over CUDA-event windows of several
back-to-back calls after warm-up, edge_reid.bench.cuda_timing; forward + backward where the row
says so, the backward fed fixed random output gradients),
the ratios, achieved TFLOP/s (attention) or GB/s (weighted sum), and the fraction of the
device's peak. Rows go to a CSV and a JSON file (atomic writes). Also prints the multiply-add
count of the paper-order fusion vs the exact cheaper form at 256x128 (FlopCounterMode; it counts
2 FLOPs per multiply-add, halved here). Without a GPU it says so and exits 0 after running the
CPU reference once.

    python benchmarks/bench_kernels.py [--quick] [--dtype float32 bfloat16] [--per-config] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

from edge_reid.bench.cuda_timing import cuda_median_ms
from edge_reid.bench.report import write_csv, write_json
from edge_reid.models.visnet_fusion import ScaleAttentionFusion
from kernels._triton_utils import TRITON_DTYPES
from kernels.masked_attention import masked_channel_attention, masked_channel_attention_reference
from kernels.masked_attention.reference import attention_flops

#: Dense peaks by GPU name fragment: (HBM bytes/s, dense FP16/BF16 tensor FLOP/s, FP32 non-tensor FLOP/s).
PEAKS: Dict[str, Tuple[float, float, float]] = {
    "H200": (4.8e12, 989e12, 67e12),
    "H100 PCIe": (2.0e12, 756e12, 51e12),
    "H100": (3.35e12, 989e12, 67e12),  # SXM
    "A100-SXM4-80GB": (2.04e12, 312e12, 19.5e12),
    "A100": (1.56e12, 312e12, 19.5e12),
    "L40S": (0.864e12, 362e12, 91.6e12),
    "A10G": (0.6e12, 125e12, 31.2e12),
    "RTX 4090": (1.0e12, 165e12, 82.6e12),
}


def device_peaks(name: str) -> Optional[Tuple[float, float, float]]:
    """Known peaks for this GPU (first matching fragment), or None."""
    for key, val in PEAKS.items():
        if key in name:
            return val
    return None


def _fusion_setup(batch: int, input_hw: Tuple[int, int], device: str, dtype=torch.float32):
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


def _fwd_bwd(fn: Callable[[], torch.Tensor], inputs: List[torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        for t in inputs:
            t.grad = None
        fn().float().sum().backward()

    return run


def _attention_inputs(b: int, n: int, c: int, dtype: torch.dtype):
    x = torch.randn(b, n, c, device="cuda", dtype=dtype, requires_grad=True)
    mask = (torch.rand(b, n, c, device="cuda") > 0.5).to(dtype).requires_grad_()
    return x, mask


def _attention_achieved(b: int, n: int, c: int, ms: float, dtype: torch.dtype, peaks) -> Tuple[str, float]:
    """('x TFLOP/s (...)', fraction of the matching peak: FP32 CUDA cores or FP16/BF16 tensor cores).

    Algorithmic FLOPs (7 N x N x C products for forward + backward, the FlashAttention
    convention), so the figure compares across implementations; recomputation is not counted.
    """
    tflops = attention_flops(b, n, c, backward=True) / (ms * 1e-3) / 1e12
    label = "fp32 IEEE dots" if dtype == torch.float32 else f"{str(dtype).split('.')[-1]} tensor cores"
    peak = (peaks[2] if dtype == torch.float32 else peaks[1]) if peaks else float("nan")
    return f"{tflops:.1f} TFLOP/s algorithmic ({label})", tflops * 1e12 / peak


def _row(op: str, shape: str, t: Dict[str, float], achieved: str = "", fraction: float = float("nan"),
         mem: str = "") -> dict:
    """One table row from eager / compile / triton milliseconds (missing ones NaN)."""
    e, c, k, sd = (t.get(name, float("nan")) for name in ("eager", "compile", "triton", "sdpa"))
    return {"op": op, "shape": shape, "eager_ms": e, "compile_ms": c, "triton_ms": k, "speedup_vs_eager": e / k,
            "speedup_vs_compile": c / k, "achieved": achieved, "fraction_of_peak": fraction, "peak_mem_mib": mem,
            "sdpa_ms": sd, "dispatch_ms": t.get("dispatch", float("nan")), "dispatch_path": t.get("path", "")}


# --- masked attention: every path, per-path rows, the dispatcher's timed pick (issue 14 item 1) ---

#: Attention paths timed per shape: column name in the summary row -> dispatch path.
ATTENTION_PATHS = {"eager": "reference", "compile": "compiled", "triton": "triton", "sdpa": "sdpa"}


def bench_attention(shapes, dtypes, rows: list, peaks) -> None:
    """Per shape and dtype: forward + backward of every path (``masked_channel_attention(path=...)``:
    eager reference, its torch.compile, the Triton kernels, SDPA on (X*M, X*M, X)) and of the
    default call (the dispatcher, which times the paths itself on first use at a shape class).
    One row per path (time, algorithmic TFLOP/s, fraction of peak, peak memory), then a summary
    row with every path's time and the dispatcher's pick."""
    from kernels.masked_attention.dispatch import pick_path
    from kernels.masked_attention.op import run_path

    for dtype in dtypes:
        for b, n, c in shapes:
            x, mask = _attention_inputs(b, n, c, dtype)
            label = f"B{b}xN{n}xC{c} {str(dtype).split('.')[-1]}"
            variants = {name: (lambda p=path: masked_channel_attention(x, mask, path=p))
                        for name, path in ATTENTION_PATHS.items()}
            variants["dispatch"] = lambda: masked_channel_attention(x, mask)
            times: Dict[str, object] = {}
            mem = {}
            for name, fn in variants.items():
                try:
                    run = _fwd_bwd(fn, [x, mask])
                    run()  # compile / autotune / the dispatcher's timing first: their buffers are not the op's
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    times[name] = cuda_median_ms(run)
                    mem[name] = torch.cuda.max_memory_allocated() / 2**20
                except (torch.cuda.OutOfMemoryError, RuntimeError):  # OOM, or no SDPA backend for this shape
                    times[name], mem[name] = float("nan"), float("nan")
                    torch.cuda.empty_cache()
            times["path"] = pick_path(x, mask.to(dtype), c ** -0.5, lambda p, a, m: run_path(p, a, m, c ** -0.5))
            for name, path in ATTENTION_PATHS.items():
                achieved, fraction = _attention_achieved(b, n, c, times[name], dtype, peaks)
                rows.append(_row(f"masked_attention_fwd_bwd path={path}", label, {"triton": times[name]}, achieved,
                                 fraction, f"{mem[name]:.0f}"))
            achieved, fraction = _attention_achieved(b, n, c, times["triton"], dtype, peaks)
            rows.append(_row("masked_attention_fwd_bwd", label, times, achieved, fraction,
                             " / ".join(f"{k} {v:.0f}" for k, v in mem.items())))


def bench_attention_configs(shape, dtypes, rows: list, peaks) -> None:
    """Each GPU configuration of the one-tile kernels alone (kernels.launches.fixed_config; forward
    and backward kernels share their tile names): which one wins where."""
    from triton.runtime.errors import OutOfResources

    from kernels.launches import fixed_config
    from kernels.masked_attention import triton_backward, triton_forward
    from kernels.masked_attention.triton_common import table_configs

    b, n, c = shape
    configs = table_configs({0: [*triton_forward.FWD_CONFIGS, *triton_backward.BWD_CONFIGS]})
    for dtype in dtypes:
        x, mask = _attention_inputs(b, n, c, dtype)
        for i, config in enumerate(configs):
            try:
                with fixed_config([triton_forward, triton_backward], config):
                    ms = cuda_median_ms(_fwd_bwd(lambda: masked_channel_attention(x, mask, path="triton"), [x, mask]))
            except (OutOfResources, RuntimeError):  # a tile over this GPU's shared memory, or a compile failure
                ms = float("nan")
            achieved, fraction = _attention_achieved(b, n, c, ms, dtype, peaks)
            shape_label = f"B{b}xN{n}xC{c} {str(dtype).split('.')[-1]} {config}"
            rows.append(_row(f"masked_attention_fwd_bwd config {i}", shape_label, {"triton": ms}, achieved, fraction))


def bench_fusion(shapes, rows: list, peaks) -> None:
    """VisNet's whole fusion (forward + backward of its GAP, training mode), and each stage's
    sampled projection alone (eval forward), against the paper order / PyTorch form."""
    from kernels.scale_fusion.fast import project_sampled_affine
    from kernels.scale_fusion.triton_projection import projection_flops, projection_forward

    for b, hw in shapes:
        feats, ref, fast = _fusion_setup(b, hw, "cuda")
        compiled = torch.compile(ref.fuse)
        variants = {"eager": lambda: ref.fuse(*feats)[2], "compile": lambda: compiled(*feats)[2],
                    "triton": lambda: fast.fuse(*feats)[2]}
        times = {k: cuda_median_ms(_fwd_bwd(fn, feats)) for k, fn in variants.items()}
        rows.append(_row("visnet_fusion_fwd_bwd", f"B{b} input {hw[0]}x{hw[1]}", times))
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
            rows.append(_row("sampled_projection_fwd", f"B{b} {cin}->2048 x{fac} to {h4}x{w4}", t,
                             f"{tflops:.1f} TFLOP/s"))


def bench_weighted_sum(batches: List[int], hw: Tuple[int, int], rows: list, peaks) -> None:
    """The memory-bound weighted sum + GAP of 4 maps (B x 2048 x h x w, float32): the device's copy
    bandwidth first (a 1 GiB copy, read + write), then the forward alone and forward + backward
    (fixed random output gradients), each against eager and torch.compile of the PyTorch form."""
    from kernels.scale_fusion.op import weighted_scale_sum, weighted_sum_reference

    src = torch.empty(2**28, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = cuda_median_ms(lambda: dst.copy_(src))
    copy_gbs = 2 * src.numel() * 4 / (copy_ms * 1e-3) / 1e9
    del src, dst
    rows.append(_row("device_copy", "1 GiB float32", {"eager": copy_ms}, f"{copy_gbs:.0f} GB/s",
                     copy_gbs * 1e9 / peaks[0] if peaks else float("nan")))
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
            rows.append(_row(op, f"B{b}x2048x{h4}x{w4}x4", t, f"{gbs:.0f} GB/s ({gbs / copy_gbs:.0%} of copy)",
                             gbs * 1e9 / peaks[0] if peaks else float("nan")))


# ----------------------------------------------------------------------------- linear DCS attention (issue 14, item 2)
def bench_linear(dtypes: List[torch.dtype], rows: list, peaks, quick: bool) -> None:
    """Forward + backward of the linear form at every DCS-MobileNetV2 / DCS-ResNet50 attention shape
    (batch 64; --quick: the first two at batch 8): eager, torch.compile, Triton, dispatcher."""
    from edge_reid.bench.linear_attention_rows import bench_linear_attention, dcs_attention_shapes

    shapes = dcs_attention_shapes((256, 128))
    for r in bench_linear_attention(shapes[:2] if quick else shapes, 8 if quick else 64, dtypes, cuda_median_ms,
                                    peaks[0] if peaks else 0.0):
        rows.append(_row(r["op"], r["shape"], {**r["times"], "path": r["path"]}, r["achieved"], r["fraction"]))


FIELDS = ["op", "shape", "eager_ms", "compile_ms", "triton_ms", "speedup_vs_eager", "speedup_vs_compile",
          "achieved", "fraction_of_peak", "peak_mem_mib", "sdpa_ms", "dispatch_ms", "dispatch_path"]


def write_rows(rows: list, out_dir: Path, extra: dict) -> None:
    """CSV and JSON with the same rows (atomic writes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "bench_kernels.csv", rows, FIELDS)
    write_json(out_dir / "bench_kernels.json", {"rows": rows, **extra})


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small shapes only")
    ap.add_argument("--dtype", nargs="+", default=["bfloat16", "float32"], choices=list(TRITON_DTYPES),
                    help="attention input dtypes, in this order (default bfloat16 float32)")
    ap.add_argument("--per-config", action="store_true",
                    help="also time every attention autotune config alone at the first attention shape "
                         "(B64 N2048 C256; with --quick B4 N512 C64)")
    ap.add_argument("--out", default="benchmarks/results", help="folder for bench_kernels.csv/.json")
    args = ap.parse_args(argv)

    ref_macs, fast_macs = fusion_macs((256, 128))
    print(f"VisNet fusion forward at 256x128, batch 1: paper order {ref_macs / 1e9:.3f} G multiply-adds, "
          f"exact cheaper form {fast_macs / 1e9:.3f} G ({ref_macs / fast_macs:.2f}x fewer) "
          "[torch.utils.flop_counter, one multiply-add counted once]")
    if not torch.cuda.is_available():
        x = torch.randn(1, 64, 32)
        mask = (torch.rand(1, 32) > 0.5).float()
        y = masked_channel_attention_reference(x, mask)
        print(f"No CUDA GPU is visible: GPU timings skipped; ran the CPU reference once (output {tuple(y.shape)}).")
        return 0
    name = torch.cuda.get_device_name()
    peaks = device_peaks(name)
    print(f"Device: {name}; peaks {'unknown' if peaks is None else peaks}")
    att_shapes = ([(4, 512, 64), (2, 1000, 200)] if args.quick else
                  [(64, 2048, 256), (8, 8192, 256), (64, 4096, 24), (16, 2048, 2048)])
    fus_shapes = [(8, (256, 128))] if args.quick else [(64, (256, 128))]
    rows: list = []
    extra = {"device": name, "peaks": peaks, "fusion_macs_256x128": {"paper_order": ref_macs, "fast": fast_macs}}

    def flush() -> None:  # rows so far on disk after every step: a run cut short by a time limit keeps them
        for r in rows[flush.done:]:
            print(" | ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)
        flush.done = len(rows)
        write_rows(rows, Path(args.out), extra)

    flush.done = 0
    bench_weighted_sum([8] if args.quick else [64, 1024], (256, 128), rows, peaks)
    flush()
    bench_fusion(fus_shapes, rows, peaks)
    flush()
    for dtype in [TRITON_DTYPES[d] for d in args.dtype]:
        for shape in att_shapes:
            bench_attention([shape], [dtype], rows, peaks)
            flush()
        if args.per_config:
            bench_attention_configs(att_shapes[0], [dtype], rows, peaks)
            flush()
    bench_linear([TRITON_DTYPES[d] for d in args.dtype], rows, peaks, args.quick)
    flush()
    print(f"Wrote {args.out}/bench_kernels.csv and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
