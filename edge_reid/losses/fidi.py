"""FIDI: a symmetric alpha-divergence metric loss (VisNet, ``shared/specs/visnet.md``).

Over ordered pairs i != j of L2-normalised embeddings: the ground-truth "same identity"
distribution K_ij and the learned similarity U_ij = exp(-beta * d_ij) are pulled together with
D_alpha(U || K) + D_alpha(K || U). Same-id pairs are drawn together, different-id pairs apart,
without the hard-mining of the triplet loss.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from edge_reid.errors import EdgeReidError
from edge_reid.losses.registry import LOSSES, ReIDLoss


def alpha_divergence(p: torch.Tensor, q: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    """Per-pair alpha-divergence term p * log(alpha p / ((alpha - 1) p + q)), both sides floored at eps."""
    num = (alpha * p).clamp_min(eps)
    den = ((alpha - 1.0) * p + q).clamp_min(eps)
    return p * torch.log(num / den)


def fidi_loss(
    features: torch.Tensor, targets: torch.Tensor, alpha: float = 1.05, beta: float = 0.5, eps: float = 1e-8
) -> torch.Tensor:
    """L_FIDI of a batch: ``features`` B x D (normalised here), ``targets`` B identity labels."""
    f = F.normalize(features.float(), dim=1)
    b = f.shape[0]
    diff = f[:, None, :] - f[None, :, :]
    d = torch.sqrt((diff * diff).sum(dim=2) + 1e-8)
    k = (targets[:, None] == targets[None, :]).to(f.dtype).clamp(eps, 1.0 - eps)
    u = torch.exp(-beta * d).clamp(eps, 1.0 - eps)
    off = ~torch.eye(b, dtype=torch.bool, device=f.device)
    d_uk = alpha_divergence(u, k, alpha, eps)[off].mean()
    d_ku = alpha_divergence(k, u, alpha, eps)[off].mean()
    return d_uk + d_ku


@LOSSES.register("fidi")
class FIDILoss(ReIDLoss):
    """FIDI on ``feature_key`` (default ``features``, the GAP output before BNNeck)."""

    name = "fidi"
    requires = ("features",)

    def __init__(self, alpha: float = 1.05, beta: float = 0.5, eps: float = 1e-8, feature_key: str = "features") -> None:
        super().__init__()
        try:
            self.alpha, self.beta, self.eps = float(alpha), float(beta), float(eps)
        except (TypeError, ValueError):
            raise EdgeReidError("Loss 'fidi' options 'alpha', 'beta' and 'eps' must be numbers.") from None
        if self.alpha <= 1.0:
            raise EdgeReidError(f"Loss 'fidi' option 'alpha' must be > 1, got {alpha!r}.")
        if self.beta <= 0.0:
            raise EdgeReidError(f"Loss 'fidi' option 'beta' must be > 0, got {beta!r}.")
        if not 0.0 < self.eps < 0.5:
            raise EdgeReidError(f"Loss 'fidi' option 'eps' must lie in (0, 0.5), got {eps!r}.")
        self.feature_key = str(feature_key)
        self.requires = (self.feature_key,)

    def compute(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        x = outputs[self.feature_key]
        if x.dim() != 2 or x.shape[0] < 2:
            raise EdgeReidError(
                f"Loss 'fidi' needs '{self.feature_key}' of shape B x D with B >= 2, got {tuple(x.shape)}."
            )
        return fidi_loss(x, targets, self.alpha, self.beta, self.eps)
