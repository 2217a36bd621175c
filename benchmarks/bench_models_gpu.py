"""Whole-model GPU timing for the kernels' targets: VisNet eval with the paper-order fusion and with
the fast (Triton) fusion, and plain ResNet50, in the same run.

Per batch size: milliseconds per batch (median over CUDA-event windows of several back-to-back
calls, edge_reid.bench.cuda_timing), images/s, the first call's seconds (compile + autotune
included), the fast fusion's speed-up over the paper order and its images/s relative to ResNet50.
Writes ``bench_models.json`` (atomic) in ``--out``. Needs a CUDA GPU: without one it says so in
one sentence and exits 2.

    python benchmarks/bench_models_gpu.py [--batch 1 128] [--dtype float16] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from edge_reid.bench.cuda_timing import cuda_median_ms
from edge_reid.bench.report import write_json
from edge_reid.models import build_model

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
MODELS = {"resnet50": ("resnet50", {}), "visnet_paper_order": ("visnet", {"fusion_impl": "reference"}),
          "visnet_fast_fusion": ("visnet", {"fusion_impl": "fast"})}


def time_models(batches: List[int], dtype: torch.dtype, size=(256, 128)) -> List[Dict[str, object]]:
    """One row per (model, batch): ms per batch, images/s, first-call seconds."""
    rows = []
    for label, (name, options) in MODELS.items():
        torch.manual_seed(0)
        model = build_model(name, num_classes=751, **options).to("cuda", dtype).eval()
        for b in batches:
            x = torch.randn(b, 3, *size, device="cuda", dtype=dtype)
            with torch.inference_mode():
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                model(x)
                torch.cuda.synchronize()
                first = time.perf_counter() - t0
                ms = cuda_median_ms(lambda: model(x))
            rows.append({"model": label, "batch": b, "dtype": str(dtype).split(".")[-1], "ms": ms,
                         "images_per_s": b * 1000.0 / ms, "first_call_s": first})
        del model
        torch.cuda.empty_cache()
    by = {(r["model"], r["batch"]): r for r in rows}
    for r in rows:
        if r["model"] == "visnet_fast_fusion":
            r["speedup_vs_paper_order"] = by[("visnet_paper_order", r["batch"])]["ms"] / r["ms"]
            r["images_per_s_vs_resnet50"] = r["images_per_s"] / by[("resnet50", r["batch"])]["images_per_s"]
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 128])
    ap.add_argument("--dtype", default="float16", choices=list(DTYPES))
    ap.add_argument("--out", default="benchmarks/results", help="folder for bench_models.json")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("No CUDA GPU is visible, so the whole-model GPU timing cannot run.")
        return 2
    rows = time_models(args.batch, DTYPES[args.dtype])
    for r in rows:
        print(" | ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench_models.json", {"device": torch.cuda.get_device_name(), "rows": rows})
    print(f"Wrote {out}/bench_models.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
