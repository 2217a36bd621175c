"""The toolkit's one timer: p50/p90/p99 milliseconds per call after warm-up, images per second.

Shared by the build pipeline's gates and tables (``edge_reid.deploy``) and the benchmarks
(``edge_reid.bench``); nothing here imports torch.
"""

from __future__ import annotations

import gc
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


__all__ = ["PERCENTILES", "LatencyStats", "latency_stats", "measure_latency", "time_callable"]
