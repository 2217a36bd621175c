"""VisNet (spec: shared/specs/visnet.md): ResNet50, multi-scale fusion with scale attention,
a BNNeck identity head and a training-only semantic clustering head.

Top-level parts follow the paper's parameter breakdown (Table III): ``backbone`` (ResNet50
stages 0-4), ``fusion`` (projections + attention MLP), ``semantic_head``, ``head.classifier``
and ``head.bn`` (BNNeck). The ablations of the paper are options of the ``visnet`` factory.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.models.base import ReIDModel
from edge_reid.models.baselines import ResNet50Stages, parse_input_size
from edge_reid.models.heads import BNNeckHead
from edge_reid.models.registry import MODELS
from edge_reid.models.semantic_head import SemanticHead
from edge_reid.models.visnet_fusion import RESNET50_STAGE_CHANNELS, ScaleAttentionFusion, parse_fuse_stages


class VisNet(ReIDModel):
    """ResNet50 -> ScaleAttentionFusion -> GAP -> BNNeck, plus the semantic head in training.

    Training output: ``logits``, ``features`` (GAP of the fused map), ``embeddings`` (BNNeck
    output), ``scale_weights`` (B x S, columns ``fusion.scales``), ``fused_map``,
    ``stem_features`` (GAP of stage 0, detached) and, with the semantic head,
    ``semantic_logits`` (B x 4 x H x W). Eval: L2-normalised embeddings; no semantic head.
    """

    def __init__(
        self,
        num_classes: int,
        last_stride: int = 2,
        fuse_stages: Sequence[int] = (1, 2, 3),
        scale_attention: bool = True,
        semantic_head: bool = True,
        pretrained: Optional[str] = None,
        input_size: Tuple[int, int] = (256, 128),
        fusion_impl: str = "reference",
    ) -> None:
        super().__init__(embedding_dim=RESNET50_STAGE_CHANNELS[3], input_size=parse_input_size(input_size))
        for name, value in (("scale_attention", scale_attention), ("semantic_head", semantic_head)):
            if not isinstance(value, bool):
                raise InvalidInputError(f"Option {name} must be true or false, got {value!r}.")
        fuse_stages = parse_fuse_stages(fuse_stages)  # checked before the (slow) backbone is built
        self.num_classes_ = int(num_classes)
        self.backbone = ResNet50Stages(last_stride=last_stride, pretrained=pretrained)
        self.fusion = ScaleAttentionFusion(
            fuse_stages=fuse_stages, scale_attention=scale_attention, fusion_impl=fusion_impl
        )
        self.semantic_head = SemanticHead(self.embedding_dim) if semantic_head else None
        self.head = BNNeckHead(self.embedding_dim, self.num_classes_)

    def forward_train(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        stem, f1, f2, f3, f4 = self.backbone(x)
        fused, weights, features = self.fusion.fuse(f1, f2, f3, f4)  # GAP from the fusion kernel
        embeddings, logits = self.head(features)
        out = {
            "logits": logits,
            "features": features,
            "embeddings": embeddings,
            "scale_weights": weights,
            "fused_map": fused,
            "stem_features": stem.mean(dim=(2, 3)).detach(),
        }
        if self.training and self.semantic_head is not None:
            out["semantic_logits"] = self.semantic_head(fused)
        return out

    def parameter_breakdown(self) -> Dict[str, int]:
        """Parameters per part, named as in the paper's Table III (frozen ones included)."""
        parts: Dict[str, Optional[nn.Module]] = {
            "backbone": self.backbone,
            "fusion": self.fusion,
            "semantic_head": self.semantic_head,
            "classifier": self.head.classifier,
            "bnneck": self.head.bn,
        }
        return {name: sum(p.numel() for p in m.parameters()) if m is not None else 0 for name, m in parts.items()}


# The class is its own factory: its keyword arguments are the model's named options (the
# ablations: ``fuse_stages``, ``scale_attention``, ``semantic_head``; ``fusion_impl``).
MODELS.register("visnet")(VisNet)
