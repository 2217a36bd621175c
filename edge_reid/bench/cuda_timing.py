"""GPU timing that measures the work, not the timer: several calls per CUDA event pair.

One call per event pair with a synchronisation after each counts the host's launch and dispatch
time and the event overhead, which for a kernel of tens of microseconds is most of the figure
(kernels-gpu.md, reason 9). :func:`cuda_median_ms` brackets ``calls`` back-to-back calls with one
event pair (``calls`` chosen so that a window lasts at least ``min_window_ms``) and reports the
median per-call time over the windows. Work that is host-bound stays host-bound in this figure,
as it is in a real loop of calls.
"""

from __future__ import annotations

import math
import statistics
from typing import Callable, List

import torch


def calls_per_window(one_call_ms: float, min_window_ms: float = 2.0, max_calls: int = 2000) -> int:
    """How many back-to-back calls make one timed window of at least ``min_window_ms``."""
    if not one_call_ms > 0.0:
        return max_calls
    return int(min(max_calls, max(1, math.ceil(min_window_ms / one_call_ms))))


def cuda_median_ms(fn: Callable[[], object], warmup: int = 3, windows: int = 10, min_window_ms: float = 2.0,
                   max_calls: int = 2000) -> float:
    """Median milliseconds per call of ``fn`` on the current CUDA stream (see the module docstring)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    calls = calls_per_window(start.elapsed_time(end), min_window_ms, max_calls)
    per_call: List[float] = []
    for _ in range(windows):
        start.record()
        for _ in range(calls):
            fn()
        end.record()
        torch.cuda.synchronize()
        per_call.append(start.elapsed_time(end) / calls)
    return statistics.median(per_call)


__all__ = ["calls_per_window", "cuda_median_ms"]
