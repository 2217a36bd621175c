"""Pick the attention path by timing it: on first use at a new shape class, cached on disk.

A *shape class* is (B bucket, N bucket, C, dtype, mask kind, with/without backward): sizes in one
class share the choice (buckets are powers of two, as the autotuner's keys). On first use at a new
class, :func:`timed_choice` runs each applicable path a few times on the call's own inputs
(detached copies; forward + backward with a fixed random output gradient when the call needs
gradients), drops paths that fail (no SDPA backend, out of memory) or disagree with the reference,
and keeps the fastest. :class:`DecisionCache` stores the choice and the timings in a JSON file
next to Triton's autotune cache (``<triton cache dir>/edge_reid/attention_dispatch.json``,
``EDGE_REID_DISPATCH_CACHE`` overrides), one section per (device name, torch, triton version), so
a later process at the same class starts with the answer. Timing uses CUDA events on a GPU and
the wall clock on the CPU (where the dispatcher itself keeps the reference; the tests call this
module directly there).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from edge_reid.utils.atomic import atomic_write_json

CACHE_ENV = "EDGE_REID_DISPATCH_CACHE"
#: Timed calls per path after one untimed warm-up call (compile / autotune happen there).
TIMED_CALLS = 3
#: Largest relative difference (max abs / max |reference|) a path's output may have from the
#: reference's at the decision, per dtype, to count as correct.
AGREEMENT = {torch.float32: 1e-3, torch.float16: 2e-2, torch.bfloat16: 5e-2}


def _bucket(n: int) -> int:
    return 1 << (max(int(n), 1) - 1).bit_length()


def shape_class(x: torch.Tensor, mask: torch.Tensor, grad: bool) -> str:
    """The decision key of a call: bucketed B and N, exact C, dtype, mask kind, backward or not."""
    b, n, c = x.shape
    kind = "bnc" if mask.dim() == 3 else "bc"
    return f"B{_bucket(b)}xN{_bucket(n)}xC{c} {str(x.dtype).split('.')[-1]} {kind} {'fwd+bwd' if grad else 'fwd'}"


def device_name(device: torch.device) -> str:
    """The device's name as the cache section uses it (the CPU is "cpu")."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return device.type


def versions_key(device: torch.device) -> str:
    """Cache section: device name, torch and triton versions (a new one of either re-times)."""
    try:
        import triton

        tv = triton.__version__
    except Exception:  # pragma: no cover - Triton missing
        tv = "none"
    return f"{device_name(device)} | torch {torch.__version__} | triton {tv}"


def default_cache_path() -> Path:
    """``$EDGE_REID_DISPATCH_CACHE``, else ``edge_reid/attention_dispatch.json`` in Triton's cache dir."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env)
    base = None
    try:
        from triton import knobs

        base = knobs.cache.dir
    except Exception:  # pragma: no cover - older Triton
        pass
    base = base or os.path.join(os.path.expanduser("~"), ".triton", "cache")
    return Path(base) / "edge_reid" / "attention_dispatch.json"


class DecisionCache:
    """The on-disk table {versions key: {shape class: {"path", "ms"}}} plus an in-memory copy."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self._data: Optional[Dict[str, Dict[str, dict]]] = None

    def _load(self) -> Dict[str, Dict[str, dict]]:
        if self._data is None:
            try:
                data = json.loads(self.path.read_text())
                self._data = data if isinstance(data, dict) else {}
            except (OSError, ValueError):  # missing or unreadable: time again
                self._data = {}
        return self._data

    def get(self, section: str, key: str) -> Optional[str]:
        entry = self._load().get(section, {}).get(key)
        return entry.get("path") if isinstance(entry, dict) else None

    def put(self, section: str, key: str, path: str, ms: Dict[str, float],
            dropped: Optional[Dict[str, str]] = None) -> None:
        """Record a decision; written through to disk (atomic; a read-only cache dir only warns)."""
        self._data = None  # merge with what other processes wrote meanwhile
        data = self._load()
        data.setdefault(section, {})[key] = {"path": path, "ms": ms, "dropped": dropped or {}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, data)
        except OSError as exc:
            import warnings

            warnings.warn(f"attention dispatch: could not write {self.path} ({exc}); the choice lasts this process")


def _timer(device: torch.device) -> Callable[[Callable[[], None]], float]:
    def cuda_ms(fn: Callable[[], None]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)

    def wall_ms(fn: Callable[[], None]) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    return cuda_ms if device.type == "cuda" else wall_ms


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    ref = ref.float()
    return float((a.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def time_paths(run: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor], paths: Sequence[str],
               x: torch.Tensor, mask: torch.Tensor, grad: bool, calls: int = TIMED_CALLS
               ) -> Tuple[Dict[str, float], Dict[str, str]]:
    """(median ms per path, why each dropped path was dropped). ``run(path, x, mask)`` computes one
    path; the first path in ``paths`` is the reference the others must agree with."""
    gen = torch.Generator(device=x.device).manual_seed(0)
    dy = torch.randn(x.shape, generator=gen, device=x.device).to(x.dtype) if grad else None
    timer = _timer(x.device)
    times: Dict[str, float] = {}
    dropped: Dict[str, str] = {}
    ref_out: Optional[torch.Tensor] = None
    for path in paths:
        xs = x.detach().clone().requires_grad_(grad)
        ms_ = mask.detach().clone().requires_grad_(grad and mask.is_floating_point())

        def once() -> torch.Tensor:
            with torch.enable_grad() if grad else torch.no_grad():
                y = run(path, xs, ms_)
                if grad:
                    y.backward(dy)
                    xs.grad = None
                    ms_.grad = None
            return y

        try:
            y = once()  # warm-up: compile, autotune
            if ref_out is None:
                ref_out = y.detach()
            elif _rel(y.detach(), ref_out) > AGREEMENT.get(x.dtype, 1e-3):
                dropped[path] = f"disagrees with {paths[0]} ({_rel(y.detach(), ref_out):.2e})"
                continue
            times[path] = statistics.median(timer(once) for _ in range(calls))
        except (RuntimeError, NotImplementedError, torch.cuda.OutOfMemoryError) as exc:
            dropped[path] = " ".join(str(exc).split())[:120]
            if x.device.type == "cuda":
                torch.cuda.empty_cache()
    return times, dropped


def timed_choice(run: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor], paths: Sequence[str],
                 x: torch.Tensor, mask: torch.Tensor, grad: bool, cache: DecisionCache,
                 calls: int = TIMED_CALLS) -> str:
    """The cached path for this call's shape class, else the fastest of ``paths`` (timed now and cached)."""
    section, key = versions_key(x.device), shape_class(x, mask, grad)
    hit = cache.get(section, key)
    if hit is not None and hit in paths:
        return hit
    times, dropped = time_paths(run, paths, x, mask, grad, calls)
    if not times:
        return paths[0]
    best = min(times, key=times.get)
    cache.put(section, key, best, {k: round(v, 4) for k, v in times.items()}, dropped)
    return best


__all__ = ["AGREEMENT", "CACHE_ENV", "TIMED_CALLS", "DecisionCache", "default_cache_path", "device_name",
           "shape_class", "time_paths", "timed_choice", "versions_key"]
