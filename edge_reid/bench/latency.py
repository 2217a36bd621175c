"""Latency timing: the one timer of the toolkit, and the environment it ran in.

``time_callable`` runs a callable after warm-up and returns :class:`LatencyStats` (p50/p90/p99
milliseconds per call, images per second). ``measure_latency`` is the short form used by the
build pipeline's table (a dict). ``environment`` records what a reader needs to compare two
runs: device, thread counts, library versions. Nothing here imports torch.
"""

from __future__ import annotations

import gc
import importlib
import os
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from edge_reid.errors import InvalidInputError

#: Percentiles reported for every measurement.
PERCENTILES = (50, 90, 99)


@dataclass
class LatencyStats:
    """Milliseconds per call of one batch, over ``iters`` timed calls after warm-up."""

    batch: int
    iters: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @property
    def images_per_s(self) -> float:
        """Throughput at the median latency."""
        return self.batch * 1000.0 / self.p50_ms if self.p50_ms > 0 else float("inf")

    @property
    def ms_per_image(self) -> float:
        """Median latency divided by the batch size."""
        return self.p50_ms / self.batch

    def to_dict(self) -> Dict[str, float]:
        data = asdict(self)
        data["images_per_s"] = self.images_per_s
        data["ms_per_image"] = self.ms_per_image
        return data


def latency_stats(times_ms: Sequence[float], batch: int = 1) -> LatencyStats:
    """Summarise per-call timings (ms); percentiles interpolate linearly between ranks (numpy's default)."""
    values = np.asarray(list(times_ms), dtype=np.float64)
    if values.size == 0:
        raise InvalidInputError("No timings to summarise; run at least one iteration.")
    if int(batch) <= 0:
        raise InvalidInputError(f"The batch size must be positive, got {batch!r}.")
    p50, p90, p99 = (float(v) for v in np.percentile(values, PERCENTILES))
    return LatencyStats(int(batch), int(values.size), p50, p90, p99, float(values.mean()),
                        float(values.min()), float(values.max()))


def time_callable(fn: Callable[[], Any], iters: int = 20, warmup: int = 3, batch: int = 1,
                  max_seconds: Optional[float] = None, min_iters: int = 3,
                  sync: Optional[Callable[[], None]] = None) -> LatencyStats:
    """Time ``fn()`` ``iters`` times after ``warmup`` untimed calls.

    ``max_seconds`` caps the timed loop (slow configurations on a shared CPU) once ``min_iters``
    calls are done; ``sync`` (e.g. ``torch.cuda.synchronize``) runs before each clock read so
    asynchronous devices are timed to completion. The garbage collector is paused while timing.
    """
    if iters < 1 or warmup < 0:
        raise InvalidInputError(f"iters must be >= 1 and warmup >= 0, got {iters} and {warmup}.")
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        for i in range(iters):
            t0 = time.perf_counter()
            fn()
            if sync is not None:
                sync()
            times.append((time.perf_counter() - t0) * 1000.0)
            if max_seconds is not None and i + 1 >= min_iters and time.perf_counter() - started > max_seconds:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return latency_stats(times, batch)


def measure_latency(embed: Callable[[np.ndarray], Any], batch: np.ndarray, iters: int = 10,
                    warmup: int = 2) -> Dict[str, float]:
    """Time ``embed(batch)``: p50/p90/p99 ms per call, ms per image and images per second (a dict)."""
    stats = time_callable(lambda: embed(batch), iters=iters, warmup=warmup, batch=len(batch))
    return {k: v for k, v in stats.to_dict().items() if k in
            ("p50_ms", "p90_ms", "p99_ms", "ms_per_image", "images_per_s")}


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
