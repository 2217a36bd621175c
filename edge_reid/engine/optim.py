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

    ``backbone_lr_factor`` (default 1) scales the learning rate of every parameter outside the
    model's ``head`` (BNNeck and classifier); ``bias_lr_factor`` (default 1) scales that of the
    bias parameters, in their own group (FusionReID's release: x 2). Each group keeps its
    ``lr_factor`` (the product) for :meth:`EpochSchedule.apply`.
    """
    factor = float(optim_cfg.get("backbone_lr_factor", 1.0))
    bias_factor = float(optim_cfg.get("bias_lr_factor", 1.0))
    buckets: Dict[Any, list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lr_factor = 1.0 if name.startswith("head.") else factor
        if bias_factor != 1.0 and name.endswith(".bias"):
            lr_factor *= bias_factor
        buckets.setdefault((param.ndim <= 1, lr_factor), []).append(param)
    lr = optim_cfg["lr"]
    groups = [{"params": params, "weight_decay": 0.0 if no_decay else optim_cfg["weight_decay"],
               "lr_factor": lr_factor, "lr": lr * lr_factor}
              for (no_decay, lr_factor), params in sorted(buckets.items(), key=lambda kv: kv[0])]
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
