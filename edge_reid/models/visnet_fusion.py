"""VisNet's multi-scale fusion with scale attention (spec: shared/specs/visnet.md).

Stages 1-3 are projected to 2048 channels at their native resolution (Conv1x1 without bias,
BN, ReLU), bilinearly resized (align_corners=False) to stage 4's resolution, and fused with
stage 4 by per-scale attention weights::

    M = mean(P_s);  w = sigmoid(conv(512 -> S)(relu(conv(2048 -> 512)(GAP(M)))));  F = sum_s w_s P_s

This module is self-contained so that a faster exact form (projecting only the positions the
bilinear resize reads) can be added beside :meth:`ScaleAttentionFusion.reference_forward`.
Parameter names: ``proj_conv{s}`` / ``proj_bn{s}`` for stage ``s``, ``attn_conv1`` /
``attn_conv2`` for the attention MLP.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from edge_reid.errors import InvalidInputError

#: Implementations of the fusion (identical parameters and results).
FUSION_IMPLS: Tuple[str, ...] = ("reference", "fast")

#: Channels of ResNet50's stages 1-4.
RESNET50_STAGE_CHANNELS: Tuple[int, int, int, int] = (256, 512, 1024, 2048)


class ScaleAttentionFusion(nn.Module):
    """Fuse ResNet50 stages ``fuse_stages`` (a subset of 1-3) with stage 4.

    ``forward(f1, f2, f3, f4) -> (fused_map B x C4 x H4 x W4, scale_weights B x S)`` where the
    weight columns follow :attr:`scales` (the fused stages, then 4). Stages not in
    ``fuse_stages`` are ignored (pass anything, e.g. None). With ``scale_attention=False``
    there is no attention MLP: the fused map is the plain mean of the aligned maps and the
    reported weights are all 1/S.
    """

    def __init__(
        self,
        fuse_stages: Sequence[int] = (1, 2, 3),
        scale_attention: bool = True,
        stage_channels: Sequence[int] = RESNET50_STAGE_CHANNELS,
        hidden: int = 512,
        fusion_impl: str = "reference",
    ) -> None:
        super().__init__()
        if fusion_impl not in FUSION_IMPLS:
            raise InvalidInputError(f"Option fusion_impl must be one of {', '.join(FUSION_IMPLS)}, got {fusion_impl!r}.")
        #: "reference" (paper order) or "fast" (kernels.scale_fusion: same result, fewer FLOPs);
        #: no parameters depend on it, so a checkpoint loads into either.
        self.fusion_impl = fusion_impl
        self.fuse_stages = parse_fuse_stages(fuse_stages)
        self.scales: Tuple[int, ...] = self.fuse_stages + (4,)
        self.scale_attention = bool(scale_attention)
        self.channels = int(stage_channels[3])
        for s in self.fuse_stages:
            setattr(self, f"proj_conv{s}", nn.Conv2d(int(stage_channels[s - 1]), self.channels, 1, bias=False))
            setattr(self, f"proj_bn{s}", nn.BatchNorm2d(self.channels))
        if self.scale_attention:
            self.attn_conv1 = nn.Conv2d(self.channels, hidden, 1, bias=True)
            self.attn_conv2 = nn.Conv2d(hidden, len(self.scales), 1, bias=True)

    def project(self, stage: int, feature: torch.Tensor) -> torch.Tensor:
        """Conv1x1 -> BN -> ReLU of stage ``stage`` at its native resolution."""
        conv = getattr(self, f"proj_conv{stage}")
        bn = getattr(self, f"proj_bn{stage}")
        return F.relu(bn(conv(feature)))

    def aligned_maps(self, stages: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """P_s for every scale in :attr:`scales`: projected and resized to stage 4's size."""
        f4 = stages[3]
        size = f4.shape[-2:]
        maps = []
        for s in self.fuse_stages:
            p = self.project(s, stages[s - 1])
            if p.shape[-2:] != size:
                p = F.interpolate(p, size=size, mode="bilinear", align_corners=False)
            maps.append(p)
        maps.append(f4)
        return maps

    def attention(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """Scale weights B x S in (0, 1) from the GAP of the mean aligned map."""
        g = torch.stack(list(maps), dim=0).mean(dim=0).mean(dim=(2, 3), keepdim=True)
        w = torch.sigmoid(self.attn_conv2(F.relu(self.attn_conv1(g))))
        return w.flatten(1)

    def reference_forward(
        self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, f4: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The defining (plain PyTorch) computation of the fusion."""
        maps = self.aligned_maps((f1, f2, f3, f4))
        if not self.scale_attention:
            weights = f4.new_full((f4.shape[0], len(maps)), 1.0 / len(maps))
            return torch.stack(maps, dim=0).mean(dim=0), weights
        weights = self.attention(maps)
        fused = maps[0] * weights[:, 0].view(-1, 1, 1, 1)
        for i in range(1, len(maps)):
            fused = fused + maps[i] * weights[:, i].view(-1, 1, 1, 1)
        return fused, weights

    def fast_forward(
        self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, f4: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The exact cheaper form (kernels.scale_fusion): project only the positions the resize reads.

        Falls back to :meth:`reference_forward` when a stage is not an integer multiple of stage 4.
        """
        fused, weights, _ = self._fast_fuse(f1, f2, f3, f4)
        return fused, weights

    def _fast_fuse(
        self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, f4: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from kernels.scale_fusion import AttentionMLP, Projection, scale_fusion

        stages = (f1, f2, f3, f4)
        h4, w4 = f4.shape[-2:]
        if any(stages[s - 1].shape[-2] % h4 or stages[s - 1].shape[-1] % w4 for s in self.fuse_stages):
            fused, weights = self.reference_forward(f1, f2, f3, f4)
            return fused, weights, fused.mean(dim=(2, 3))
        projections = [
            Projection.from_modules(getattr(self, f"proj_conv{s}"), getattr(self, f"proj_bn{s}"))
            for s in self.fuse_stages
        ]
        mlp = (
            AttentionMLP(self.attn_conv1.weight, self.attn_conv1.bias, self.attn_conv2.weight, self.attn_conv2.bias)
            if self.scale_attention
            else None
        )
        return scale_fusion([stages[s - 1] for s in self.fuse_stages], f4, projections, mlp)

    def fuse(
        self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, f4: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(fused_map, scale_weights, GAP of the fused map B x C4)``: the fast form returns the GAP
        its weighted-sum kernel computed in the same pass (no second read of the fused map)."""
        if self.fusion_impl == "fast":
            return self._fast_fuse(f1, f2, f3, f4)
        fused, weights = self.reference_forward(f1, f2, f3, f4)
        return fused, weights, fused.mean(dim=(2, 3))

    def forward(
        self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor, f4: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return ``(fused_map, scale_weights)``."""
        if self.fusion_impl == "fast":
            return self.fast_forward(f1, f2, f3, f4)
        return self.reference_forward(f1, f2, f3, f4)


def parse_fuse_stages(fuse_stages: Sequence[int]) -> Tuple[int, ...]:
    """Check ``fuse_stages`` is a set of stages among 1, 2, 3 and return it sorted."""
    try:
        stages = tuple(sorted({int(s) for s in fuse_stages}))
    except (TypeError, ValueError):
        stages = (0,)
    if any(s not in (1, 2, 3) for s in stages):
        raise InvalidInputError(f"Option fuse_stages must list stages among 1, 2 and 3, got {fuse_stages!r}.")
    return stages
