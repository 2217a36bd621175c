"""Helpers of the TMPA losses (MSS, MSI): row-wise feature distances, option and input checks."""

from __future__ import annotations

import math
from typing import Callable, Dict, Mapping

import torch
import torch.nn.functional as F

from edge_reid.errors import EdgeReidError, InvalidInputError


def _euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).sum(dim=1).clamp_min(1e-12).sqrt()


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-8)


#: name -> row-wise distance d(a_i, b_i) of two B x D tensors
DISTANCES: Dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "euclidean": _euclidean,  # ||a - b||_2 (clamped at 1e-6 for a finite gradient)
    "cosine": _cosine,  # 1 - a.b / (|a| |b|), in [0, 2]
}


def distance_fn(name: str, loss_name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The distance called ``name``; an unknown one is one sentence naming the known ones."""
    if name not in DISTANCES:
        raise EdgeReidError(f"Loss '{loss_name}' option 'distance' must be one of {', '.join(DISTANCES)}, got {name!r}.")
    return DISTANCES[name]


def non_negative(value: float, key: str, loss_name: str) -> float:
    """A finite number >= 0 from the config (a margin or a weight)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EdgeReidError(f"Loss '{loss_name}' option '{key}' must be a number, got {value!r}.") from None
    if not math.isfinite(v) or v < 0:
        raise EdgeReidError(f"Loss '{loss_name}' option '{key}' must be a finite number >= 0, got {value!r}.")
    return v


def feature_matrix(outputs: Mapping[str, torch.Tensor], key: str, batch: int, loss_name: str) -> torch.Tensor:
    """``outputs[key]`` as a float B x D tensor, or one sentence about its shape."""
    x = outputs[key]
    if x.dim() != 2 or x.shape[0] != batch:
        raise InvalidInputError(
            f"Loss '{loss_name}' expects '{key}' of shape B x D with B = {batch} (the targets), got {tuple(x.shape)}.")
    return x.float()


def modality_vector(outputs: Mapping[str, torch.Tensor], batch: int, loss_name: str) -> torch.Tensor:
    """``outputs['modality']`` as a length-B int64 vector of 0 (visible) / 1 (infrared)."""
    m = outputs["modality"].reshape(-1).long()
    if m.shape[0] != batch or bool(((m != 0) & (m != 1)).any()):
        raise InvalidInputError(
            f"Loss '{loss_name}' expects 'modality' as {batch} values of 0 (visible) or 1 (infrared), got {tuple(m.tolist())}.")
    return m
