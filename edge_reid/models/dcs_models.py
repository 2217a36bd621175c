"""DCS-FB models: a fixed backbone with DCS-Attention after chosen stages, GAP and BNNeck.

* ``dcs_mobilenetv2``: MobileNetV2 with DCS-Attention after the stages ending at 24, 32, 64 and
  320 channels (stages 1-4 of :class:`MobileNetV2Stages`).
* ``dcs_resnet50``: ResNet50 with DCS-Attention after layer1..layer4.

Options: ``tau`` (Gumbel temperature), ``vanilla`` (M = 1, the self-attention ablation),
``form`` (``linear``, the default, or ``softmax``) and ``key_stride`` (the linear form's key
subsampling, default 2), ``insert_after`` (stage numbers 1-4 that get a block), ``sampler_rank``
and ``sampler_pooled`` (the sampler's shape, see :class:`DCSAttention`), ``pretrained`` (a local
torchvision state dict for the backbone), ``input_size``. ``dcs_mobilenetv2`` inserts after all
four stages; ``dcs_resnet50`` after layer1 and layer2 by default, the candidate closest to the
paper's 23.9 M parameters and 6.24 GFLOPs (docs/dcs_attention.md has the measured candidates).
The attention options are recorded in ``model_options`` and so in every artifact's metadata. The forward contract is the one of
every model (:mod:`edge_reid.models.base`), with ``stem_features`` for the IBB loss.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.models.base import ReIDModel
from edge_reid.models.baselines import ResNet50Stages, parse_input_size
from edge_reid.models.dcs_attention import DCSAttention, check_form
from edge_reid.models.heads import BNNeckHead
from edge_reid.models.mobilenet import MobileNetV2Stages
from edge_reid.models.registry import MODELS

ALL_STAGES: Tuple[int, ...] = (1, 2, 3, 4)
#: DCS-ResNet50's default insertion points (the measured candidate closest to the paper's size).
RESNET50_DEFAULT_STAGES: Tuple[int, ...] = (1, 2)


def parse_insert_after(value: Optional[Sequence[int]], num_stages: int = 4) -> Tuple[int, ...]:
    """Validate ``insert_after`` (stage numbers 1..num_stages, no repeats) and return it sorted."""
    if value is None:
        return tuple(range(1, num_stages + 1))
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InvalidInputError(f"Option insert_after must be a list of stage numbers 1-{num_stages}, got {value!r}.")
    stages: List[int] = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= num_stages or v in stages:
            raise InvalidInputError(
                f"Option insert_after must list distinct stage numbers 1-{num_stages}, got {list(value)!r}."
            )
        stages.append(v)
    return tuple(sorted(stages))


class StagedDCSReID(ReIDModel):
    """stem -> (stage_i -> [DCS-Attention]) for i = 1..S -> [final] -> GAP -> BNNeck.

    ``stem``, ``stages`` and ``final`` are the backbone's own modules (not copies), so a
    pretrained backbone keeps its weights; ``attention[str(i)]`` follows stage i when chosen.
    """

    def __init__(
        self,
        num_classes: int,
        stem: nn.Module,
        stages: Sequence[nn.Module],
        stage_channels: Sequence[int],
        final: Optional[nn.Module],
        embedding_dim: int,
        insert_after: Sequence[int],
        tau: float,
        vanilla: bool,
        input_size: Tuple[int, int],
        attention_options: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(embedding_dim=embedding_dim, input_size=input_size)
        self.num_classes_ = int(num_classes)
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        options = dict(attention_options or {})
        self.attention = nn.ModuleDict(
            {str(i): DCSAttention(int(stage_channels[i - 1]), tau=tau, vanilla=vanilla, **options) for i in insert_after}
        )
        self.model_options = {**options, "insert_after": list(insert_after)}
        self.final = final if final is not None else nn.Identity()
        self.head = BNNeckHead(embedding_dim, self.num_classes_)

    def forward_train(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        stem = self.stem(x)
        y = stem
        for i, stage in enumerate(self.stages, start=1):
            y = stage(y)
            if str(i) in self.attention:
                y = self.attention[str(i)](y)
        return self.pooled_outputs(stem, self.final(y))

    def kept_fractions(self) -> Dict[str, float]:
        """Share of channels each DCS block kept in its last forward (``stage<i>`` -> fraction)."""
        return {f"stage{k}": float(m.kept_fraction()) for k, m in self.attention.items()}  # type: ignore[union-attr]


def attention_options(form: str, key_stride: int, sampler_rank: int, sampler_pooled: bool) -> Dict[str, Any]:
    """The DCS-Attention options of a model, checked (one clear sentence on a bad value)."""
    check_form(form, key_stride)
    if isinstance(sampler_rank, bool) or not isinstance(sampler_rank, int) or sampler_rank < 0:
        raise InvalidInputError(f"Option sampler_rank must be an integer >= 0 (0: full C x C sampler), got {sampler_rank!r}.")
    return {"form": form, "key_stride": key_stride, "sampler_rank": sampler_rank, "sampler_pooled": bool(sampler_pooled)}


@MODELS.register("dcs_mobilenetv2")
def dcs_mobilenetv2(
    num_classes: int,
    tau: float = 1.0,
    vanilla: bool = False,
    form: str = "linear",
    key_stride: int = 2,
    insert_after: Optional[Sequence[int]] = None,
    sampler_rank: int = 0,
    sampler_pooled: bool = False,
    pretrained: Optional[str] = None,
    input_size: Tuple[int, int] = (256, 128),
) -> StagedDCSReID:
    """DCS-FB (MobileNetV2): DCS-Attention after the 24/32/64/320-channel stages, 1280-d embeddings."""
    size = parse_input_size(input_size)
    options = attention_options(form, key_stride, sampler_rank, sampler_pooled)
    stages = parse_insert_after(insert_after)
    net = MobileNetV2Stages(pretrained=pretrained)
    return StagedDCSReID(
        num_classes, net.stem, [net.stage1, net.stage2, net.stage3, net.stage4], net.stage_channels,
        net.final_conv, net.out_channels, stages, tau, vanilla, size, options,
    )


@MODELS.register("dcs_resnet50")
def dcs_resnet50(
    num_classes: int,
    tau: float = 1.0,
    vanilla: bool = False,
    form: str = "linear",
    key_stride: int = 2,
    insert_after: Optional[Sequence[int]] = RESNET50_DEFAULT_STAGES,
    sampler_rank: int = 0,
    sampler_pooled: bool = False,
    last_stride: int = 2,
    pretrained: Optional[str] = None,
    input_size: Tuple[int, int] = (256, 128),
) -> StagedDCSReID:
    """DCS-FB (ResNet50): DCS-Attention after layer1 and layer2 by default (``insert_after``: any of 1-4)."""
    size = parse_input_size(input_size)
    options = attention_options(form, key_stride, sampler_rank, sampler_pooled)
    stages = parse_insert_after(insert_after)
    net = ResNet50Stages(last_stride=last_stride, pretrained=pretrained)
    return StagedDCSReID(
        num_classes, net.stem, [net.layer1, net.layer2, net.layer3, net.layer4], net.out_channels,
        None, 2048, stages, tau, vanilla, size, options,
    )


# Checkpoints written before ``form`` / ``insert_after`` were recorded used the softmax form and,
# for ResNet50, blocks after all four stages (read by edge_reid.models.checkpoint).
dcs_mobilenetv2.unrecorded_defaults = {"form": "softmax"}  # type: ignore[attr-defined]
dcs_resnet50.unrecorded_defaults = {"form": "softmax", "insert_after": [1, 2, 3, 4]}  # type: ignore[attr-defined]
