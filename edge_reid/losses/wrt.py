"""Weighted regularized triplet (WRT, the AGW baseline's metric loss).

On the pre-BN pooled features of the joint visible + infrared batch: Euclidean distances; per
anchor, the positives are weighted by a softmax of their distances and the negatives by a
softmax of their negated distances (max-subtracted, +1e-6 in the denominator, not detached);
``d_p`` and ``d_n`` are the weighted sums and the loss is the soft margin
``log(1 + exp(-(d_n - d_p)))`` averaged over anchors. No margin to tune.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from edge_reid.losses.registry import LOSSES, ReIDLoss
from edge_reid.losses.triplet import pairwise_euclidean


def softmax_weights(dist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax of ``dist`` over the entries where ``mask`` is 1 (max-subtracted, +1e-6)."""
    max_v = (dist * mask).max(dim=1, keepdim=True).values
    exp = torch.exp(dist - max_v) * mask
    return exp / (exp.sum(dim=1, keepdim=True) + 1e-6)


@LOSSES.register("wrt")
class WeightedRegularizedTriplet(ReIDLoss):
    """WRT on ``feature_key`` (default ``features``, the pooled features before BNNeck)."""

    name = "wrt"
    requires = ("features",)

    def __init__(self, feature_key: str = "features") -> None:
        super().__init__()
        self.feature_key = str(feature_key)
        self.requires = (self.feature_key,)

    def compute(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        dist = pairwise_euclidean(outputs[self.feature_key].float())
        same = (targets[:, None] == targets[None, :]).float()
        diff = 1.0 - same
        d_p = (dist * same * softmax_weights(dist * same, same)).sum(dim=1)
        d_n = (dist * diff * softmax_weights(-dist * diff, diff)).sum(dim=1)
        return F.softplus(-(d_n - d_p)).mean()
