"""Latency benchmarks: the environment a run measured in, and the grid of targets x batches.

The timer itself (``time_callable``, :class:`LatencyStats`, ``measure_latency``) lives in
:mod:`edge_reid.utils.timing`, below both the build pipeline and the benchmarks, and is
re-exported here. ``environment`` records what a reader needs to compare two runs: device,
thread counts, library versions. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import os
import platform
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from edge_reid.utils.timing import (  # noqa: F401  (the timer lives below deploy and bench; re-exported)
    PERCENTILES,
    LatencyStats,
    latency_stats,
    measure_latency,
    time_callable,
)


# ----------------------------------------------------------------------------- environment


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else the platform's processor string)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> Optional[str]:
    try:
        return str(importlib.import_module(module).__version__)
    except Exception:  # absent or broken: reported as not installed
        return None


def environment(torch_threads: Optional[int] = None, ort_threads: int = 0) -> Dict[str, Any]:
    """Device, CPU count, thread counts and library versions of this run (torch is imported if installed)."""
    info: Dict[str, Any] = {
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpu": None,
        "ort_threads": int(ort_threads) if ort_threads else "default (physical cores)",
    }
    for name in ("torch", "onnxruntime", "onnx", "numpy", "tensorrt"):
        info[f"{name}_version"] = _version(name)
    if info["torch_version"]:
        import torch

        info["torch_threads"] = torch_threads or torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    info["device"] = info["gpu"] or f"{info['cpu_count']}-core CPU ({info['cpu']}), no GPU"
    return info


# ----------------------------------------------------------------------------- the grid


@dataclass
class Target:
    """One thing to time: a backend running one precision of one model.

    ``make`` builds the callable (``batch ndarray -> embeddings``) lazily, so a target that cannot
    run here (torch.compile without a compiler, TensorRT without a GPU) becomes a skip note.
    """

    model: str
    backend: str  # torch-eager, torch-compile, onnxruntime, tensorrt
    precision: str  # fp32, fp16, int8-cpu, int8-trt
    artifact: str
    make: Callable[[], Callable[[np.ndarray], Any]]
    device: str = "cpu"


#: The baseline every ratio refers to: PyTorch eager FP32 of the same model, same batch, same run.
BASELINE = ("torch-eager", "fp32")


def random_batch(batch: int, input_size: Sequence[int], seed: int = 0) -> np.ndarray:
    """A deterministic float32 batch x 3 x H x W in [0, 1] (the graphs' input contract)."""
    rng = np.random.default_rng(seed)
    return rng.random((int(batch), 3, int(input_size[0]), int(input_size[1])), dtype=np.float32)


def run_grid(targets: Sequence[Target], batches: Sequence[int], input_size: Sequence[int], iters: int = 10,
             warmup: int = 2, max_seconds: Optional[float] = None,
             say: Callable[[str], None] = print) -> "tuple[list, list]":
    """Time every target at every batch; returns (rows, skipped) with ratios to the eager FP32 baseline.

    A target whose construction or warm-up raises is skipped with the first line of the error.
    """
    rows: list = []
    skipped: list = []
    inputs = {b: random_batch(b, input_size, seed=b) for b in batches}
    for target in targets:
        label = f"{target.model} {target.backend} {target.precision}"
        try:
            t0 = time.perf_counter()
            fn = target.make()
            setup_s = time.perf_counter() - t0
        except Exception as exc:  # any failure to load is a note, not a crash of the whole grid
            skipped.append(_skip(target, None, exc))
            say(f"  skipped {label}: {skipped[-1]['reason']}")
            continue
        for b in batches:
            x = inputs[b]
            try:
                t0 = time.perf_counter()
                fn(x)  # first call: compilation / allocation, reported separately
                first_s = time.perf_counter() - t0
                stats = time_callable(lambda: fn(x), iters=iters, warmup=warmup, batch=b, max_seconds=max_seconds)
            except Exception as exc:
                skipped.append(_skip(target, b, exc))
                say(f"  skipped {label} batch {b}: {skipped[-1]['reason']}")
                continue
            row = {"model": target.model, "backend": target.backend, "precision": target.precision,
                   "artifact": target.artifact, "device": target.device, "batch": b,
                   **stats.to_dict(), "first_call_s": first_s, "setup_s": setup_s}
            rows.append(row)
            say(f"  {label} batch {b}: p50 {stats.p50_ms:.2f} ms, {stats.images_per_s:.1f} img/s")
    add_ratios(rows)
    return rows, skipped


def add_ratios(rows: Sequence[Dict[str, Any]]) -> None:
    """Set ``speedup_vs_eager_fp32`` (baseline p50 / row p50, same model and batch) on every row."""
    base = {(r["model"], r["batch"]): r["p50_ms"] for r in rows if (r["backend"], r["precision"]) == BASELINE}
    for r in rows:
        ref = base.get((r["model"], r["batch"]))
        r["speedup_vs_eager_fp32"] = ref / r["p50_ms"] if ref and r["p50_ms"] > 0 else None


def _skip(target: Target, batch: Optional[int], exc: BaseException) -> Dict[str, Any]:
    text = str(exc).strip().splitlines()
    reason = f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")
    return {"model": target.model, "backend": target.backend, "precision": target.precision, "batch": batch,
            "reason": reason}


__all__ = ["BASELINE", "PERCENTILES", "LatencyStats", "Target", "add_ratios", "cpu_name", "environment",
           "latency_stats", "measure_latency", "random_batch", "run_grid", "time_callable"]
