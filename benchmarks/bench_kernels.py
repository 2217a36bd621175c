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

The rows are built in the package: edge_reid/bench/kernel_rows.py (columns, peaks, files),
attention_rows.py, fusion_rows.py and linear_attention_rows.py; this script picks the shapes.

    python benchmarks/bench_kernels.py [--quick] [--dtype float32 bfloat16] [--per-config] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import torch

from edge_reid.bench.attention_rows import bench_attention, bench_attention_configs
from edge_reid.bench.fusion_rows import bench_fusion, bench_weighted_sum, fusion_macs
from edge_reid.bench.kernel_rows import device_peaks, write_rows
from edge_reid.bench.kernel_rows import kernel_row as _row  # noqa: F401  (the row maker, by its old name here)
from edge_reid.bench.linear_attention_rows import bench_linear
from kernels._triton_utils import TRITON_DTYPES
from kernels.masked_attention import masked_channel_attention_reference


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
