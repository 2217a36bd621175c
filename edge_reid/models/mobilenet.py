"""MobileNetV2 ReID baseline: torchvision's MobileNetV2 features -> GAP -> BNNeck.

The features are split into explicit stages so that attention modules (DCS-Attention) can be
inserted at the stage boundaries: stem (32 ch, stride 2), stage1..stage4 ending at
``MobileNetV2Stages.stage_channels`` = (24, 32, 64, 320) channels (strides 4, 8, 16, 32), and
the final 1x1 conv to 1280 channels.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torchvision
from torch import nn

from edge_reid.models.base import ReIDModel
from edge_reid.models.baselines import parse_input_size
from edge_reid.models.heads import BNNeckHead
from edge_reid.models.pretrained import load_backbone_weights
from edge_reid.models.registry import MODELS

#: Index ranges of torchvision's ``mobilenet_v2().features`` making up each part.
_SPLITS = {"stem": (0, 1), "stage1": (1, 4), "stage2": (4, 7), "stage3": (7, 11), "stage4": (11, 18), "final_conv": (18, 19)}


class MobileNetV2Stages(nn.Module):
    """torchvision's MobileNetV2 features as stem, stage1..stage4 and final_conv."""

    stage_channels: Tuple[int, int, int, int] = (24, 32, 64, 320)
    stem_channels: int = 32
    out_channels: int = 1280

    def __init__(self, pretrained: Optional[str] = None) -> None:
        super().__init__()
        net = torchvision.models.mobilenet_v2(weights=None)
        net.classifier = nn.Identity()  # the ImageNet classifier is not part of the backbone (its keys are skipped)
        if pretrained:
            load_backbone_weights(net, pretrained)
        for name, (start, stop) in _SPLITS.items():
            setattr(self, name, nn.Sequential(*net.features[start:stop]))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return (stem, S1, S2, S3, S4, final) feature maps."""
        stem = self.stem(x)
        s1 = self.stage1(stem)
        s2 = self.stage2(s1)
        s3 = self.stage3(s2)
        s4 = self.stage4(s3)
        return stem, s1, s2, s3, s4, self.final_conv(s4)


class MobileNetV2ReID(ReIDModel):
    """MobileNetV2 -> GAP -> BNNeck (1280-d embeddings)."""

    def __init__(
        self, num_classes: int, pretrained: Optional[str] = None, input_size: Tuple[int, int] = (256, 128)
    ) -> None:
        super().__init__(embedding_dim=MobileNetV2Stages.out_channels, input_size=parse_input_size(input_size))
        self.num_classes_ = int(num_classes)
        self.backbone = MobileNetV2Stages(pretrained=pretrained)
        self.head = BNNeckHead(self.embedding_dim, self.num_classes_)

    def forward_train(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        stem, *_, final = self.backbone(x)
        return self.pooled_outputs(stem, final)


@MODELS.register("mobilenetv2")
def mobilenetv2(num_classes: int, pretrained: Optional[str] = None,
                input_size: Tuple[int, int] = (256, 128)) -> MobileNetV2ReID:
    """MobileNetV2 (width 1.0) with GAP and BNNeck; ``pretrained`` is a local torchvision state dict."""
    return MobileNetV2ReID(num_classes, pretrained=pretrained, input_size=input_size)
