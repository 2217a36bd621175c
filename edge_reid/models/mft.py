"""Modality Feature Transfer (MFT, TMPA): generate the missing modality-specific feature.

One :class:`MFTSite` sits after a shared ResNet stage whose map ``X`` (B x C x H x W) it reads.
The paper names the parts and leaves the constants open; the reading implemented here:

* Modality feature extraction (the paper's MFE, beyond the two-stream stem): a shared
  extractor ``sh = E_sh(X)`` (2 Cs channels) and one extractor per modality, ``E_V`` / ``E_I``
  (Cs channels; 1x1 conv + BN + ReLU each). A sample's *real* specific feature is its own
  modality's ``E_m(X)``.
* Transfer (:class:`MFTGenerator`, one per direction V->I and I->V): the *missing* specific
  feature is generated from the real one. Three 1x1 projections are computed once and shared
  by both paths (the paper's "reuse the 1x1 convolutions"): query ``q = W_q X`` (from the shared
  map: what to look for), key ``k = W_k r`` and value ``v = W_v r`` (from the real specific map
  ``r``). Attention path: multi-head cross attention, softmax(q^T k / sqrt(d)) v over all key
  positions (no positional encoding: the convolution path carries locality). Convolution path
  (ACmix-style): a fully connected layer maps the 3 x heads projected features of each channel
  to kernel^2 shifted features, aggregated by a grouped kernel x kernel convolution. The two
  paths are summed with learned scalar weights (alpha, beta; both start at 1), then BN + ReLU
  (so the generated feature lives on the same non-negative scale as the real one).
* Fusion: ``Y = X + BN_0(W_f [sh, spec_V, spec_I])`` with BN_0's scale starting at zero, so an
  untrained site is the identity and TMPA starts as AGW.

Routing: in training each sample goes through its own modality's extractor and direction (each
BatchNorm sees only its samples, as AGW's stems); in eval and export both are computed and one
picked per sample with ``torch.where`` (a static graph; the same result with running stats).
"""

from __future__ import annotations

import math
from typing import Dict

import torch
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.models.agw import route_by_modality


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """1x1 convolution (no bias) + BatchNorm + ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MFTGenerator(nn.Module):
    """One direction of the transfer: the real specific map of one modality (plus the shared
    map as the query source) -> the other modality's specific map; attention + convolution
    paths over shared 1x1 projections, summed with learned weights."""

    def __init__(self, channels: int, width: int, heads: int = 4, kernel: int = 3) -> None:
        super().__init__()
        if width % heads:
            raise InvalidInputError(f"MFT width {width} must be divisible by its number of heads {heads}.")
        if kernel < 1 or kernel % 2 == 0:
            raise InvalidInputError(f"MFT kernel must be an odd positive size, got {kernel}.")
        self.width, self.heads, self.kernel = int(width), int(heads), int(kernel)
        self.head_dim = width // heads
        self.query = nn.Conv2d(channels, width, 1)
        self.key = nn.Conv2d(width, width, 1)
        self.value = nn.Conv2d(width, width, 1)
        # convolution path: 3 x heads features per channel -> kernel^2 shifted features -> grouped conv
        self.fc = nn.Conv2d(3 * heads, kernel * kernel, 1, bias=False)
        self.dep_conv = nn.Conv2d(kernel * kernel * self.head_dim, width, kernel, padding=kernel // 2,
                                  groups=self.head_dim, bias=True)
        self.alpha = nn.Parameter(torch.ones(()))
        self.beta = nn.Parameter(torch.ones(()))
        self.out = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=True))

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Multi-head cross attention: queries at every position attend over all key positions."""
        b, _, h, w = q.shape
        shape = (b, self.heads, self.head_dim, h * w)
        q, k, v = q.reshape(shape), k.reshape(shape), v.reshape(shape)
        scores = torch.matmul(q.transpose(2, 3), k) / math.sqrt(self.head_dim)  # B x heads x N x N
        out = torch.matmul(v, scores.softmax(dim=-1).transpose(2, 3))  # B x heads x d x N
        return out.reshape(b, self.width, h, w)

    def convolution(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """ACmix-style convolution path over the same projected features."""
        b, _, h, w = q.shape
        stacked = torch.cat([t.reshape(b, self.heads, self.head_dim, h * w) for t in (q, k, v)], dim=1)
        shifted = self.fc(stacked)  # B x k^2 x d x N
        shifted = shifted.permute(0, 2, 1, 3).reshape(b, self.head_dim * self.kernel ** 2, h, w)
        return self.dep_conv(shifted)

    def forward(self, real: torch.Tensor, shared_map: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        q, k, v = self.query(shared_map), self.key(real), self.value(real)
        mixed = self.alpha * self.attention(q, k, v) + self.beta * self.convolution(q, k, v)
        return self.out(mixed)


class MFTSite(nn.Module):
    """Extract shared and real specific features of a stage's map, generate the missing specific
    feature, fuse all three back into the map (identity at initialisation)."""

    def __init__(self, channels: int, width: int, heads: int = 4, kernel: int = 3) -> None:
        super().__init__()
        if width < 1:
            raise InvalidInputError(f"MFT width must be a positive number of channels, got {width}.")
        self.width = int(width)
        self.shared = conv_bn_relu(channels, 2 * width)
        self.specific = nn.ModuleList([conv_bn_relu(channels, width) for _ in range(2)])  # visible, infrared
        # generators[m]: from modality m's real feature to the other modality's
        self.generators = nn.ModuleList([MFTGenerator(channels, width, heads, kernel) for _ in range(2)])
        self.fuse = nn.Sequential(nn.Conv2d(4 * width, channels, 1, bias=False), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.fuse[1].weight)

    def forward(self, x: torch.Tensor, modality: torch.Tensor) -> Dict[str, torch.Tensor]:  # type: ignore[override]
        """``x``: B x C x H x W, ``modality``: B (0 visible, 1 infrared). Returns the fused map
        ``out`` and the maps ``shared``, ``specific_visible``, ``specific_infrared`` (for each
        sample one of the last two is real, the other generated)."""
        shared = self.shared(x)
        real = route_by_modality(self.specific, modality, self.training, x)
        generated = route_by_modality(self.generators, modality, self.training, real, x)
        infrared = (modality == 1).reshape(-1, 1, 1, 1)
        spec_v = torch.where(infrared, generated, real)
        spec_i = torch.where(infrared, real, generated)
        out = x + self.fuse(torch.cat([shared, spec_v, spec_i], dim=1))
        return {"out": out, "shared": shared, "specific_visible": spec_v, "specific_infrared": spec_i}
