"""The loss registry and the base class every registered loss follows.

A loss is an ``nn.Module`` called as ``loss(outputs, targets) -> scalar tensor``. It declares the
model outputs it reads in the class attribute ``requires``; :func:`check_outputs` turns a missing
output into one clear sentence instead of a ``KeyError`` deep in a training step. Other packages
(IBB, later) register their own terms here and the composer finds them by name.
"""

from __future__ import annotations

from typing import Dict, Mapping, Sequence, Tuple

import torch
from torch import nn

from edge_reid.errors import EdgeReidError
from edge_reid.registry import Registry

LOSSES: Registry = Registry("loss term")


def check_outputs(outputs: Mapping[str, torch.Tensor], requires: Sequence[str], loss_name: str) -> None:
    """Raise :class:`EdgeReidError` naming the first output ``loss_name`` needs that is missing."""
    if not isinstance(outputs, Mapping):
        raise EdgeReidError(
            f"Loss '{loss_name}' expects the model's training outputs as a dict, got {type(outputs).__name__}."
        )
    for key in requires:
        if key not in outputs:
            have = ", ".join(sorted(outputs)) or "none"
            raise EdgeReidError(
                f"Loss '{loss_name}' needs the model output '{key}', which is missing (outputs present: {have})."
            )


class ReIDLoss(nn.Module):
    """Base of the built-in losses: checks ``requires`` and then calls :meth:`compute`."""

    name: str = "loss"
    requires: Tuple[str, ...] = ()

    def forward(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        check_outputs(outputs, self.requires, self.name)
        return self.compute(outputs, targets)

    def compute(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def check_probability(value: float, key: str, loss_name: str, upper_open: bool = True) -> float:
    """Validate a config value in [0, 1) (or [0, 1]) and return it as a float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise EdgeReidError(f"Loss '{loss_name}' option '{key}' must be a number, got {value!r}.") from None
    if not (0.0 <= v < 1.0 if upper_open else 0.0 <= v <= 1.0):
        bound = "[0, 1)" if upper_open else "[0, 1]"
        raise EdgeReidError(f"Loss '{loss_name}' option '{key}' must lie in {bound}, got {value!r}.")
    return v
