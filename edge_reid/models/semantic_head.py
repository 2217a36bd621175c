"""VisNet's semantic clustering head: a per-position MLP over the fused feature map.

Each spatial position of the B x C x H x W map goes through C -> 1024 -> 512 -> num_parts with
BN, ReLU and Dropout after each hidden layer (biases on). A per-position MLP is written with
1x1 convolutions and BatchNorm2d, which is the same computation as Linear + BatchNorm1d over
all B*H*W positions (BN statistics pooled over batch and positions), with the same parameters.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class SemanticHead(nn.Module):
    """Per-position classifier into body parts (upper, lower, shoes, background by default)."""

    def __init__(
        self,
        in_channels: int = 2048,
        hidden: Sequence[int] = (1024, 512),
        num_parts: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers = []
        width = in_channels
        for h in hidden:
            layers += [nn.Conv2d(width, h, 1, bias=True), nn.BatchNorm2d(h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Conv2d(width, num_parts, 1, bias=True))
        self.mlp = nn.Sequential(*layers)
        self.num_parts = num_parts

    def forward(self, fused_map: torch.Tensor) -> torch.Tensor:
        """Part logits B x num_parts x H x W, one prediction per position of ``fused_map``."""
        return self.mlp(fused_map)
