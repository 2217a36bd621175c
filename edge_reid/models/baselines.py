"""Plain baselines: a backbone, global average pooling and the BNNeck head."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torchvision
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.models.base import ReIDModel
from edge_reid.models.heads import BNNeckHead
from edge_reid.models.pretrained import load_backbone_weights
from edge_reid.models.registry import MODELS


class ResNet50Stages(nn.Module):
    """torchvision's ResNet50 split into its stem (stage 0) and layer1..layer4 (stages 1-4)."""

    def __init__(self, last_stride: int = 2, pretrained: Optional[str] = None) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise InvalidInputError(f"Option last_stride must be 1 or 2, got {last_stride!r}.")
        net = torchvision.models.resnet50(weights=None)
        net.fc = nn.Identity()  # the ImageNet classifier is not part of the backbone (its keys are skipped)
        if pretrained:
            load_backbone_weights(net, pretrained)
        if last_stride == 1:
            net.layer4[0].conv2.stride = (1, 1)
            net.layer4[0].downsample[0].stride = (1, 1)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.out_channels = (256, 512, 1024, 2048)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return (stem, F1, F2, F3, F4)."""
        s0 = self.stem(x)
        f1 = self.layer1(s0)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return s0, f1, f2, f3, f4


class GlobalPoolReID(ReIDModel):
    """ResNet50 -> GAP -> BNNeck: the shape of every plain baseline."""

    def __init__(
        self,
        num_classes: int,
        last_stride: int = 2,
        pretrained: Optional[str] = None,
        input_size: Tuple[int, int] = (256, 128),
    ) -> None:
        super().__init__(embedding_dim=2048, input_size=parse_input_size(input_size))
        self.num_classes_ = num_classes
        self.backbone = ResNet50Stages(last_stride=last_stride, pretrained=pretrained)
        self.head = BNNeckHead(2048, num_classes)

    def forward_train(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        stem, *_, f4 = self.backbone(x)
        return self.pooled_outputs(stem, f4)


@MODELS.register("resnet50")
def resnet50(num_classes: int, last_stride: int = 2, pretrained: Optional[str] = None,
             input_size: Tuple[int, int] = (256, 128)) -> GlobalPoolReID:
    """Plain ResNet50 (stock last stride 2) with GAP and BNNeck."""
    return GlobalPoolReID(num_classes, last_stride=last_stride, pretrained=pretrained, input_size=input_size)


@MODELS.register("bot_resnet50")
def bot_resnet50(num_classes: int, last_stride: int = 1, pretrained: Optional[str] = None,
                 input_size: Tuple[int, int] = (256, 128)) -> GlobalPoolReID:
    """Bag-of-tricks baseline (Luo et al. 2019): ResNet50 with last stride 1, GAP and BNNeck."""
    return GlobalPoolReID(num_classes, last_stride=last_stride, pretrained=pretrained, input_size=input_size)


def parse_input_size(input_size: Sequence[int]) -> Tuple[int, int]:
    """Check the ``input_size`` option is (height, width), two positive integers, and return it."""
    try:
        height, width = (int(v) for v in input_size)
        valid = height > 0 and width > 0 and all(float(v) == int(v) for v in input_size)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise InvalidInputError(f"Option input_size must be (height, width) as two positive integers, got {input_size!r}.")
    return height, width
