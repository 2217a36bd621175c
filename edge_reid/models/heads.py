"""Heads shared by every model."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn


class BNNeckHead(nn.Module):
    """BNNeck (Luo et al. 2019): BatchNorm1d with a frozen zero bias, then a bias-free classifier.

    Triplet/metric losses use the features before the BN, the classifier and the test-time
    embedding use the features after it.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_dim)
        self.bn.bias.requires_grad_(False)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.classifier = nn.Linear(in_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(embeddings, logits)`` for pooled ``features`` (B x in_dim)."""
        embeddings = self.bn(features)
        return embeddings, self.classifier(embeddings)
