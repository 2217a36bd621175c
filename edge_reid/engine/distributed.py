"""Multi-process training under ``torchrun``: process group set-up, rank queries, helpers.

A single-process run needs nothing: every helper answers as rank 0 of a world of 1.
``torchrun`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; with ``WORLD_SIZE > 1`` the
engine joins a process group (NCCL on GPUs, Gloo on the CPU) and wraps the model in
``DistributedDataParallel``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank, world size and local rank from the environment ``torchrun`` sets."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group when ``WORLD_SIZE > 1`` (idempotent); return this process's place."""
    info = env_info()
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return info


def shutdown() -> None:
    """Leave the process group if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from ``src`` to every rank (a no-op alone)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box: List[Any] = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(value: float, device: torch.device) -> float:
    """The mean of a float over all ranks (itself alone)."""
    total = all_reduce_sum(value, device)
    return total / dist.get_world_size() if dist.is_available() and dist.is_initialized() else total


def all_reduce_sum(value: float, device: torch.device) -> float:
    """The sum of a float over all ranks (itself alone)."""
    if not (dist.is_available() and dist.is_initialized()):
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return float(tensor.item())
