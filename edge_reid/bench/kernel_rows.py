"""Rows of ``benchmarks/bench_kernels.py``: the table's columns, GPU peaks, the CSV/JSON writer.

Every row times one op at one shape in up to four forms (eager, torch.compile, Triton, SDPA) and
the dispatcher's pick, with the ratios, what the Triton form achieves (TFLOP/s or GB/s) and its
fraction of the device's peak. Missing times are NaN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from edge_reid.bench.report import write_csv, write_json

#: (HBM bytes/s, dense FP16/BF16 tensor FLOP/s, FP32 non-tensor FLOP/s), or None where unknown.
Peaks = Optional[Tuple[float, float, float]]
Row = Dict[str, Any]

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

FIELDS = ["op", "shape", "eager_ms", "compile_ms", "triton_ms", "speedup_vs_eager", "speedup_vs_compile",
          "achieved", "fraction_of_peak", "peak_mem_mib", "sdpa_ms", "dispatch_ms", "dispatch_path"]


def device_peaks(name: str) -> Peaks:
    """Known peaks for this GPU (first matching fragment), or None."""
    for key, val in PEAKS.items():
        if key in name:
            return val
    return None


def kernel_row(op: str, shape: str, t: Mapping[str, Any], achieved: str = "", fraction: float = float("nan"),
               mem: str = "") -> Row:
    """One table row from eager / compile / triton milliseconds (missing ones NaN)."""
    e, c, k, sd = (t.get(name, float("nan")) for name in ("eager", "compile", "triton", "sdpa"))
    return {"op": op, "shape": shape, "eager_ms": e, "compile_ms": c, "triton_ms": k, "speedup_vs_eager": e / k,
            "speedup_vs_compile": c / k, "achieved": achieved, "fraction_of_peak": fraction, "peak_mem_mib": mem,
            "sdpa_ms": sd, "dispatch_ms": t.get("dispatch", float("nan")), "dispatch_path": t.get("path", "")}


def fwd_bwd(fn: Callable[[], torch.Tensor], inputs: Sequence[torch.Tensor]) -> Callable[[], None]:
    """A call of forward + backward of ``fn`` (sum of its float output), the inputs' gradients cleared first."""
    def run() -> None:
        for t in inputs:
            t.grad = None
        fn().float().sum().backward()

    return run


def fraction_of_bandwidth(gbs: float, peaks: Peaks) -> float:
    """``gbs`` (GB/s) as a fraction of the device's HBM peak; NaN where the peak is unknown."""
    return gbs * 1e9 / peaks[0] if peaks else float("nan")


def write_rows(rows: List[Row], out_dir: Path, extra: Mapping[str, Any]) -> None:
    """CSV and JSON with the same rows (atomic writes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "bench_kernels.csv", rows, FIELDS)
    write_json(out_dir / "bench_kernels.json", {"rows": rows, **extra})


__all__ = ["FIELDS", "PEAKS", "Peaks", "Row", "device_peaks", "fraction_of_bandwidth", "fwd_bwd", "kernel_row",
           "write_rows"]
