"""Optimizer and learning-rate schedule built from the ``optim`` and ``schedule`` config sections.

The schedule is a pure function of the epoch (linear warm-up, then step or cosine decay),
so a resumed run needs no scheduler state to land on the same learning rate.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping

import torch
from torch import nn


def build_optimizer(model: nn.Module, optim_cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Adam or SGD (momentum) over the trainable parameters; no weight decay on biases and norms.

    ``bias_lr_factor`` != 1 puts the bias parameters in their own group whose learning rate is
    that multiple of the schedule's (FusionReID's release: x 2); each group's ``lr_factor``
    is kept for :meth:`EpochSchedule.apply`.
    """
    factor = float(optim_cfg.get("bias_lr_factor", 1.0))
    decay, no_decay, biases = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if factor != 1.0 and name.endswith(".bias"):
            biases.append(param)
        else:
            (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": optim_cfg["weight_decay"], "lr_factor": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_factor": 1.0},
    ]
    if biases:
        groups.append({"params": biases, "weight_decay": 0.0, "lr_factor": factor})
    lr = optim_cfg["lr"]
    if optim_cfg["name"] == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=optim_cfg["momentum"], nesterov=optim_cfg["nesterov"])


class EpochSchedule:
    """Learning-rate factor per epoch: linear warm-up, then step (x gamma at milestones) or cosine."""

    def __init__(self, schedule_cfg: Mapping[str, Any], epochs: int) -> None:
        self.kind = schedule_cfg["type"]
        self.warmup_epochs = int(schedule_cfg["warmup_epochs"])
        self.warmup_factor = float(schedule_cfg["warmup_factor"])
        self.milestones = sorted(int(m) for m in schedule_cfg["milestones"])
        self.gamma = float(schedule_cfg["gamma"])
        self.min_factor = float(schedule_cfg["min_lr_factor"])
        self.epochs = int(epochs)

    def factor(self, epoch: int) -> float:
        """The multiplier of the base learning rate during ``epoch`` (0-based)."""
        if epoch < self.warmup_epochs:
            alpha = epoch / self.warmup_epochs
            return self.warmup_factor + (1.0 - self.warmup_factor) * alpha
        if self.kind == "step":
            return self.gamma ** sum(1 for m in self.milestones if epoch >= m)
        span = max(1, self.epochs - self.warmup_epochs)
        progress = min(1.0, (epoch - self.warmup_epochs) / span)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def apply(self, optimizer: torch.optim.Optimizer, base_lr: float, epoch: int) -> float:
        """Set every parameter group's learning rate for ``epoch``; return it."""
        lr = base_lr * self.factor(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr * float(group.get("lr_factor", 1.0))
        return lr

    def state_dict(self) -> Dict[str, Any]:
        return {"type": self.kind, "warmup_epochs": self.warmup_epochs, "milestones": list(self.milestones),
                "gamma": self.gamma, "epochs": self.epochs}
