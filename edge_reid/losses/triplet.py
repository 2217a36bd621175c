"""Batch-hard triplet loss (Hermans et al.) with a hard or a soft (softplus) margin."""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from edge_reid.errors import EdgeReidError
from edge_reid.losses.registry import LOSSES, ReIDLoss


def pairwise_euclidean(x: torch.Tensor) -> torch.Tensor:
    """B x B Euclidean distances; the clamp keeps the gradient finite on the diagonal."""
    sq = (x * x).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.t())
    return d2.clamp_min(1e-12).sqrt()


@LOSSES.register("triplet")
class TripletLoss(ReIDLoss):
    """For each anchor: hardest positive vs hardest negative in the batch (PK sampling).

    ``margin`` (default 0.3) gives ``relu(d_ap - d_an + margin)``; ``margin: null`` or
    ``soft_margin: true`` gives ``softplus(d_ap - d_an)``. ``normalize`` L2-normalises the
    features first; ``feature_key`` picks the model output (default ``features``).
    Anchors without any negative in the batch are skipped.
    """

    name = "triplet"
    requires = ("features",)

    def __init__(
        self,
        margin: Optional[float] = 0.3,
        soft_margin: bool = False,
        normalize: bool = False,
        feature_key: str = "features",
    ) -> None:
        super().__init__()
        if margin is not None:
            try:
                margin = float(margin)
            except (TypeError, ValueError):
                raise EdgeReidError(f"Loss 'triplet' option 'margin' must be a number or null, got {margin!r}.") from None
            if margin < 0:
                raise EdgeReidError(f"Loss 'triplet' option 'margin' must be >= 0, got {margin!r}.")
        self.soft_margin = bool(soft_margin) or margin is None
        self.margin = margin
        self.normalize = bool(normalize)
        self.feature_key = str(feature_key)
        self.requires = (self.feature_key,)

    def compute(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        x = outputs[self.feature_key].float()
        if self.normalize:
            x = F.normalize(x, dim=1)
        dist = pairwise_euclidean(x)
        same = targets[:, None] == targets[None, :]
        d_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values  # self (0) is always a candidate
        d_an = dist.masked_fill(same, float("inf")).min(dim=1).values
        valid = torch.isfinite(d_an)
        if not bool(valid.any()):
            return x.sum() * 0.0  # no negatives at all: zero loss that keeps the graph
        diff = d_ap[valid] - d_an[valid]
        if self.soft_margin:
            return F.softplus(diff).mean()
        return F.relu(diff + float(self.margin)).mean()
