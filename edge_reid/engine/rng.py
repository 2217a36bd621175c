"""Seeding and RNG state capture, so a resumed run draws exactly the numbers the original drew.

States are stored as tensors, lists and ints only, so checkpoints still load with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python ``random``, numpy and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed derived from (run seed, epoch): every epoch starts from a known state."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2**31 - 1)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (warn only where none exists)."""
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def capture_rng_state() -> Dict[str, Any]:
    """The current state of every generator the training loop draws from."""
    version, state, gauss = random.getstate()
    np_state = np.random.get_state()
    out: Dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        "python": [int(version), [int(v) for v in state], gauss],
        "numpy": [str(np_state[0]), torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
                  int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["torch_cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Put back generator states saved by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch_cpu"])
    version, values, gauss = state["python"]
    random.setstate((int(version), tuple(int(v) for v in values), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    if "torch_cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["torch_cuda"])
