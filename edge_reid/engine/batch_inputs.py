"""The extra model inputs of a training batch (modality, camera ids), for models that declare them."""

from __future__ import annotations

import inspect
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn


def takes_camera_ids(model: nn.Module) -> bool:
    """Whether ``model.forward`` has a ``camera_ids`` parameter (FusionReID's SIE, in every camera mode)."""
    try:
        return "camera_ids" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def batch_extra_inputs(module: nn.Module, batch: Sequence[Any], dataset: Optional[Any],
                       device: torch.device) -> Dict[str, torch.Tensor]:
    """The model's declared extra inputs (``extra_inputs``: modality, camera ids) for this batch;
    a model whose forward takes ``camera_ids`` gets them in every mode (FusionReID's SIE learns
    from the cameras even when the deployed graph does not take them)."""
    names = tuple(getattr(module, "extra_inputs", ()))
    if "camera_ids" not in names and takes_camera_ids(module):
        names += ("camera_ids",)
    if not names:
        return {}
    from edge_reid.data.loader import model_inputs

    inputs = model_inputs(names, batch, dataset)
    return {k: v.to(device, non_blocking=True) for k, v in inputs.items()}


__all__ = ["batch_extra_inputs", "takes_camera_ids"]
