"""AGW (Ye et al., TPAMI 2021), the cross-modality baseline: a two-stream ResNet50.

Separate stems (conv1, bn1, relu, maxpool) for visible and infrared images, shared layer1-4
with last stride 1, non-local blocks (dot product normalised by the number of positions, no
softmax) after the last 2 blocks of layer2 and the last 3 of layer3, GeM pooling with p = 3
fixed, and BNNeck (frozen bias, bias-free classifier). Eval mode returns the L2-normalised BN
feature.

The stream an image goes through is the ``modality`` input (int64, shape N: 0 visible,
1 infrared; ``meta().inputs`` names it). Training routes each sample through its own stem
(each stem's BatchNorm sees only its modality); eval and export compute both stems and pick
per sample (``torch.where``), which is the same result with running BN statistics and a
static graph. ``modality=None`` means all visible.
"""

from __future__ import annotations

import copy
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.models.base import ReIDModel
from edge_reid.models.baselines import parse_input_size
from edge_reid.models.heads import BNNeckHead
from edge_reid.models.pretrained import load_backbone_weights
from edge_reid.models.registry import MODELS


class NonLocalBlock(nn.Module):
    """Embedded dot-product non-local block: z = x + BN(W(f(x) g(x) / N)); W's BN starts at zero."""

    def __init__(self, channels: int, reduction: int = 2) -> None:
        super().__init__()
        inter = max(1, channels // reduction)
        self.theta = nn.Conv2d(channels, inter, 1)
        self.phi = nn.Conv2d(channels, inter, 1)
        self.g = nn.Conv2d(channels, inter, 1)
        self.w = nn.Sequential(nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))
        nn.init.zeros_(self.w[1].weight)
        nn.init.zeros_(self.w[1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        theta = self.theta(x).flatten(2).transpose(1, 2)  # B x N x C'
        phi = self.phi(x).flatten(2)  # B x C' x N
        g = self.g(x).flatten(2).transpose(1, 2)  # B x N x C'
        attn = torch.matmul(theta, phi) / float(h * w)
        y = torch.matmul(attn, g).transpose(1, 2).reshape(b, -1, h, w)
        return x + self.w(y)


def route_by_modality(branches: Sequence[nn.Module], modality: torch.Tensor, training: bool,
                      *inputs: torch.Tensor) -> torch.Tensor:
    """``branches[1](*inputs)`` for the infrared samples (modality 1), ``branches[0]`` for the rest.

    Training: each branch sees only its samples (its BatchNorm statistics stay per modality).
    Eval: both branches run on the whole batch and ``torch.where`` picks (a static graph; the same
    result with running statistics).
    """
    infrared = modality == 1
    if not training:
        return torch.where(infrared.reshape(-1, 1, 1, 1), branches[1](*inputs), branches[0](*inputs))
    parts = []
    for branch, mask in ((branches[0], ~infrared), (branches[1], infrared)):
        idx = torch.nonzero(mask).flatten()
        if idx.numel():
            parts.append((idx, branch(*[t[idx] for t in inputs])))
    first = parts[0][1]
    out = first.new_empty((modality.shape[0], *first.shape[1:]))
    for idx, feat in parts:
        out[idx] = feat
    return out


def gem_pool(x: torch.Tensor, p: float = 3.0, eps: float = 1e-12) -> torch.Tensor:
    """Generalised-mean pooling over H x W with a fixed exponent ``p`` (features are >= 0)."""
    return (x.clamp_min(0).pow(p).mean(dim=(2, 3)) + eps).pow(1.0 / p)


def _with_non_local(layer: nn.Sequential, channels: int, count: int, reduction: int) -> nn.Sequential:
    """``layer``'s blocks with a non-local block after each of the last ``count``."""
    blocks = list(layer.children())
    out = []
    for i, block in enumerate(blocks):
        out.append(block)
        if i >= len(blocks) - count:
            out.append(NonLocalBlock(channels, reduction))
    return nn.Sequential(*out)


class AGW(ReIDModel):
    """Two-stream ResNet50 with non-local blocks, GeM and BNNeck (visible-infrared ReID)."""

    extra_inputs = ("modality",)

    def __init__(self, num_classes: int, pretrained: Optional[str] = None, input_size: Tuple[int, int] = (288, 144),
                 non_local: Sequence[int] = (0, 2, 3, 0), nl_reduction: int = 2, gem_p: float = 3.0) -> None:
        super().__init__(embedding_dim=2048, input_size=parse_input_size(input_size))
        if len(non_local) != 4 or any(int(n) < 0 for n in non_local):
            raise InvalidInputError(f"Option non_local must list 4 non-negative block counts, got {non_local!r}.")
        self.num_classes_ = num_classes
        self.gem_p = float(gem_p)
        net = torchvision.models.resnet50(weights=None)
        net.fc = nn.Identity()
        if pretrained:
            load_backbone_weights(net, pretrained)
        net.layer4[0].conv2.stride = (1, 1)  # last stride 1
        net.layer4[0].downsample[0].stride = (1, 1)
        self.visible_stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.infrared_stem = copy.deepcopy(self.visible_stem)
        layers = [net.layer1, net.layer2, net.layer3, net.layer4]
        channels = (256, 512, 1024, 2048)
        self.body = nn.Sequential(*[_with_non_local(layer, c, int(n), nl_reduction) if n else layer
                                    for layer, c, n in zip(layers, channels, non_local)])
        self.head = BNNeckHead(2048, num_classes)

    def stems(self, x: torch.Tensor, modality: Optional[torch.Tensor]) -> torch.Tensor:
        """Each sample through its modality's stem."""
        if modality is None:
            return self.visible_stem(x)
        modality = modality.to(device=x.device).reshape(-1)
        return route_by_modality((self.visible_stem, self.infrared_stem), modality, self.training, x)

    def forward_train(self, x: torch.Tensor, modality: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        stem = self.stems(x, modality)
        fmap = self.body(stem)
        features = gem_pool(fmap, self.gem_p)
        embeddings, logits = self.head(features)
        return {"logits": logits, "features": features, "embeddings": embeddings,
                "stem_features": stem.mean(dim=(2, 3)).detach()}

    def forward(self, x: torch.Tensor, modality: Optional[torch.Tensor] = None):  # type: ignore[override]
        out = self.forward_train(self.normalizer(x), modality)
        if self.training:
            return out
        return F.normalize(out["embeddings"], dim=1)


@MODELS.register("agw")
def agw(num_classes: int, pretrained: Optional[str] = None, input_size: Tuple[int, int] = (288, 144),
        non_local: Sequence[int] = (0, 2, 3, 0), nl_reduction: int = 2) -> AGW:
    """AGW: two-stream ResNet50 (separate stems, shared layers), non-local, GeM p=3, BNNeck."""
    return AGW(num_classes, pretrained=pretrained, input_size=input_size, non_local=tuple(non_local),
               nl_reduction=nl_reduction)
