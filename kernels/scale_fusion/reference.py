"""Paper-order VisNet scale-attention fusion, written functionally (the definition to test against).

P_s = interpolate(ReLU(BN(Conv1x1(F_s))), size of F4, bilinear, align_corners=False) for the
projected stages, P_last = F4; w = sigmoid(MLP(GAP(mean_s P_s))); fused = sum_s w_s P_s; gap =
GAP(fused). BN uses batch statistics (and updates running ones) when ``training``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


@dataclass
class Projection:
    """One stage's Conv1x1 (no bias) + BatchNorm2d parameters and buffers (shared, not copied)."""

    weight: torch.Tensor  # D x C (x 1 x 1)
    bn_weight: torch.Tensor
    bn_bias: torch.Tensor
    running_mean: Optional[torch.Tensor]
    running_var: Optional[torch.Tensor]
    num_batches_tracked: Optional[torch.Tensor]
    eps: float = 1e-5
    momentum: Optional[float] = 0.1
    training: bool = False

    @classmethod
    def from_modules(cls, conv: torch.nn.Conv2d, bn: torch.nn.BatchNorm2d) -> "Projection":
        """Views of an existing Conv2d/BatchNorm2d pair (running stats update in place)."""
        return cls(conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked,
                   bn.eps, bn.momentum, bn.training)

    @property
    def uses_batch_stats(self) -> bool:
        return self.training or self.running_mean is None


@dataclass
class AttentionMLP:
    """sigmoid(W2 ReLU(W1 g + b1) + b2); weights as Linear (out x in) or 1x1 conv (out x in x 1 x 1)."""

    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor

    def __call__(self, g: torch.Tensor) -> torch.Tensor:
        h = F.relu(F.linear(g, self.w1.flatten(1), self.b1))
        return torch.sigmoid(F.linear(h, self.w2.flatten(1), self.b2))


def average_factor(p: Projection) -> float:
    """Running-stat factor of this training step, counting the batch as nn.BatchNorm2d does."""
    if not p.training or p.num_batches_tracked is None:
        return 0.0 if p.momentum is None else float(p.momentum)
    p.num_batches_tracked.add_(1)
    return 1.0 / float(p.num_batches_tracked) if p.momentum is None else float(p.momentum)


def project_reference(p: Projection, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """ReLU(BN(Conv1x1(x))) over the full map, then bilinear resize to ``size``."""
    w = p.weight.reshape(p.weight.shape[0], -1, 1, 1)
    factor = average_factor(p)
    y = F.batch_norm(F.conv2d(x, w), p.running_mean, p.running_var, p.bn_weight, p.bn_bias,
                     training=p.uses_batch_stats, momentum=factor, eps=p.eps)
    y = F.relu(y)
    if tuple(y.shape[-2:]) != tuple(size):
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
    return y


def combine(maps: Sequence[torch.Tensor], mlp: Optional[AttentionMLP]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(fused, weights B x S, gap B x D) from the aligned maps; uniform weights 1/S without an MLP."""
    stacked = torch.stack(list(maps), dim=1)  # B x S x D x h x w
    if mlp is None:
        weights = stacked.new_full(stacked.shape[:2], 1.0 / stacked.shape[1])
    else:
        weights = mlp(stacked.mean(dim=1).mean(dim=(2, 3)))
    fused = (stacked * weights[:, :, None, None, None]).sum(1)
    return fused, weights, fused.mean(dim=(2, 3))


def scale_fusion_reference(
    feats: Sequence[torch.Tensor], f4: torch.Tensor, projections: Sequence[Projection], mlp: Optional[AttentionMLP]
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paper order: project every position, resize, attention, weighted sum; returns (fused, w, gap)."""
    size = (int(f4.shape[-2]), int(f4.shape[-1]))
    maps: List[torch.Tensor] = [project_reference(p, x, size) for p, x in zip(projections, feats)]
    maps.append(f4)
    return combine(maps, mlp)
