"""Shared helpers for the Triton kernels: availability, interpreter detection, dispatch rule.

The rule every op follows: run Triton on CUDA tensors, and on CPU tensors only when Triton's
interpreter is on (``TRITON_INTERPRET=1``, read when the kernels are decorated); otherwise use the
PyTorch reference. ONNX export always goes through the reference decomposition.
"""

from __future__ import annotations

import os
from typing import Dict, List

import torch

try:  # Triton is absent on some machines (macOS, Jetson images); the references still work.
    import triton  # noqa: F401
    import triton.language as tl  # noqa: F401

    HAS_TRITON = True
except Exception:  # pragma: no cover - depends on the machine
    HAS_TRITON = False


def interpreting() -> bool:
    """True when Triton's CPU interpreter is on (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


#: The input dtypes the kernels take, by name (float64 and the rest use the PyTorch reference).
TRITON_DTYPES: Dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16,
                                         "bfloat16": torch.bfloat16}


def use_triton(*tensors: torch.Tensor) -> bool:
    """Whether these tensors go to the Triton kernels (else the PyTorch reference).

    CUDA tensors of a :data:`TRITON_DTYPES` dtype use Triton when it is installed; CPU tensors
    only under the interpreter. Never during ONNX export, which must see standard operators.
    """
    if not HAS_TRITON or torch.onnx.is_in_onnx_export():
        return False
    if not tensors or tensors[0].dtype not in TRITON_DTYPES.values():
        return False
    dev = tensors[0].device
    if dev.type == "cuda":
        return True
    return dev.type == "cpu" and interpreting()


def next_pow2(n: int, minimum: int = 16) -> int:
    """Smallest power of two >= max(n, minimum) (tile sizes must be powers of two)."""
    n = max(int(n), minimum)
    return 1 << (n - 1).bit_length()


def autotune_configs(gpu_configs: List[dict], cpu_config: dict) -> List[dict]:
    """The configurations to try: all of them on a GPU, a single small one under the interpreter.

    Autotuning in the interpreter would multiply its (already slow) run time for no benefit.
    """
    return [cpu_config] if interpreting() else gpu_configs


def triton_autotune_configs(gpu_configs: List[dict], cpu_config: dict) -> list:
    """:func:`autotune_configs` as ``triton.Config`` objects: block sizes become meta-parameters,
    ``num_warps`` / ``num_stages`` (when present) the launch options."""
    import triton

    out = []
    for config in autotune_configs(gpu_configs, cpu_config):
        meta = dict(config)
        launch = {k: meta.pop(k) for k in ("num_warps", "num_stages") if k in meta}
        out.append(triton.Config(meta, **launch))
    return out
