"""Autotuning that costs seconds: few configurations, bucketed keys, pruning, an on-disk cache.

Every autotuned kernel is decorated with :func:`autotune`, which

* keys the tuning on the kernel's shape-class arguments: wrappers pass bucketed sizes
  (:func:`bucket`, the next power of two) rather than raw ones, so a new N within a bucket reuses
  the tuned choice instead of benchmarking again;
* prunes the configuration list before any benchmark (Triton's ``early_config_prune``, see
  :func:`make_pruner`): configurations whose estimated shared memory exceeds the device's limit,
  the ones marked as spilling in float32 (read from ``kernels/compile_check.py``) when the input
  is float32, the ones whose channel tile does not fit the problem's channels; then at most
  :data:`MAX_TRIED` remain (smallest tiles first when the grid would be small for the device,
  largest first otherwise), so the first call compiles and times two configurations, not all;
* caches the timings on disk (Triton's ``cache_results``: the choice survives the process, keyed
  by Triton version, target, kernel source, key and configurations) where the installed Triton
  has it. No configuration carries a ``pre_hook`` (that would disable the disk cache).

Under the interpreter the kernels carry a single configuration (``_triton_utils.autotune_configs``),
so nothing here runs.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from kernels._triton_utils import triton_autotune_configs

#: At most this many configurations are compiled and timed per (kernel, key).
MAX_TRIED = 2

#: Fallback device figures when the tensors are not on a CUDA device (H100/H200: 227 KiB, 132 SMs).
DEFAULT_SHARED = 227 * 1024
DEFAULT_SMS = 132


def bucket(n: int, minimum: int = 16) -> int:
    """The tuning bucket of a size: the next power of two >= max(n, minimum)."""
    n = max(int(n), minimum)
    return 1 << (n - 1).bit_length()


def config_label(config: Any) -> Tuple:
    """A hashable identity of a configuration (block sizes, warps, stages), for dicts or triton.Config."""
    if isinstance(config, Mapping):
        meta = {k: v for k, v in config.items() if k not in ("num_warps", "num_stages")}
        warps, stages = config.get("num_warps", 4), config.get("num_stages", 3)
    else:
        meta, warps, stages = dict(config.kwargs), config.num_warps, config.num_stages
    return tuple(sorted(meta.items())) + (("num_warps", warps), ("num_stages", stages))


def device_limits(tensor: Any) -> Tuple[int, int]:
    """(shared memory bytes per block, multiprocessors) of the tensor's CUDA device (defaults otherwise)."""
    try:
        if getattr(tensor, "device", None) is None or tensor.device.type != "cuda":
            return DEFAULT_SHARED, DEFAULT_SMS
        from triton.runtime import driver

        props = driver.active.utils.get_device_properties(tensor.device.index or 0)
        return int(props["max_shared_mem"]), int(props["multiprocessor_count"])
    except Exception:  # pragma: no cover - driver differences; the defaults only widen the choice
        return DEFAULT_SHARED, DEFAULT_SMS


def make_pruner(
    *,
    tensor_arg: str,
    shared_bytes: Callable[[Dict[str, Any], int], int],
    programs: Callable[[Dict[str, Any], Dict[str, Any]], int],
    fits: Optional[Callable[[Dict[str, Any], Dict[str, Any]], bool]] = None,
    float32_excluded: Iterable[Mapping[str, Any]] = (),
    limits: Optional[Callable[[Any], Tuple[int, int]]] = None,
) -> Callable[..., List[Any]]:
    """An ``early_config_prune(configs, named_args, **kwargs)`` keeping at most :data:`MAX_TRIED`.

    ``shared_bytes(meta, element_size)`` estimates a configuration's shared memory; ``programs(meta,
    args)`` its grid size; ``fits(meta, args)`` whether its channel tile suits the problem;
    ``float32_excluded`` the configurations not to time in float32 (they spill). Never returns an
    empty list: when every configuration is pruned, the one with the least shared memory stays.
    """
    excluded = {config_label(c) for c in float32_excluded}
    get_limits = limits or device_limits

    def prune(configs: Sequence[Any], named_args: Dict[str, Any], **kwargs: Any) -> List[Any]:
        args = {**named_args, **kwargs}
        ref = args[tensor_arg]
        elem = int(ref.element_size())
        shared, sms = get_limits(ref)

        def meta(c: Any) -> Dict[str, Any]:
            return {**c.kwargs, "num_warps": c.num_warps, "num_stages": c.num_stages}

        kept = [c for c in configs if shared_bytes(meta(c), elem) <= shared]
        if elem == 4:
            kept = [c for c in kept if config_label(c) not in excluded] or kept
        if fits is not None:
            kept = [c for c in kept if fits(meta(c), args)] or kept
        if not kept:
            return [min(configs, key=lambda c: shared_bytes(meta(c), elem))]
        small = max(programs(meta(c), args) for c in kept) < 4 * sms
        kept.sort(key=lambda c: programs(meta(c), args), reverse=small)  # small grid: most programs first
        return kept[:MAX_TRIED]

    return prune


def has_disk_cache() -> bool:
    """Whether the installed Triton's autotuner can cache its timings on disk (``cache_results``)."""
    import triton

    return "cache_results" in inspect.signature(triton.autotune).parameters


def autotune(gpu_configs: List[dict], cpu_config: dict, key: List[str],
             pruner: Optional[Callable[..., List[Any]]] = None) -> Callable[[Any], Any]:
    """``triton.autotune`` with the project's rules (see the module docstring)."""
    import triton

    options: Dict[str, Any] = {}
    if pruner is not None:
        options["prune_configs_by"] = {"early_config_prune": pruner}
    if has_disk_cache():
        options["cache_results"] = True
    return triton.autotune(configs=triton_autotune_configs(gpu_configs, cpu_config), key=key, **options)


__all__ = ["DEFAULT_SHARED", "DEFAULT_SMS", "MAX_TRIED", "autotune", "bucket", "config_label", "device_limits",
           "has_disk_cache", "make_pruner"]
