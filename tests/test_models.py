"""The registry models other than VisNet: bag-of-tricks ResNet50 and MobileNetV2, shared options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.models import MODELS, build_model
from edge_reid.models.mobilenet import MobileNetV2Stages

SIZE = (64, 32)


def _on_meta(name: str, **options: object) -> torch.nn.Module:
    """Build on the meta device: parameter shapes and output shapes without real memory."""
    with torch.device("meta"):
        return build_model(name, num_classes=751, **options)


def test_registry_lists_the_models() -> None:
    assert {"resnet50", "bot_resnet50", "mobilenetv2", "visnet"} <= set(MODELS.names())


@pytest.mark.parametrize("name", ["resnet50", "bot_resnet50", "mobilenetv2", "visnet"])
def test_every_model_takes_input_size_and_pretrained_and_rejects_unknown_options(name: str) -> None:
    model = _on_meta(name, input_size=[96, 48], pretrained=None)
    assert model.input_size == (96, 48) and model.model_name == name
    assert model.model_options == {"input_size": [96, 48], "pretrained": None}
    with pytest.raises(EdgeReidError, match=f"Model '{name}' has no option 'width'"):
        build_model(name, num_classes=5, width=2)


def test_bot_resnet50_uses_last_stride_one() -> None:
    x = torch.rand(1, 3, *SIZE, device="meta")
    plain = _on_meta("resnet50").train()
    bot = _on_meta("bot_resnet50").train()
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in bot.parameters())
    assert bot.backbone.layer4[0].conv2.stride == (1, 1)
    _, *_, f4_plain = plain.backbone(x)
    _, *_, f4_bot = bot.backbone(x)
    assert f4_plain.shape[-2:] == (2, 1) and f4_bot.shape[-2:] == (4, 2)


def test_mobilenetv2_stage_boundaries_and_forward_contract() -> None:
    torch.manual_seed(0)
    model = build_model("mobilenetv2", num_classes=9, input_size=SIZE)
    stages = model.backbone(model.normalizer(torch.rand(2, 3, *SIZE)))
    channels = [t.shape[1] for t in stages]
    assert channels == [MobileNetV2Stages.stem_channels, *MobileNetV2Stages.stage_channels, 1280]
    assert channels[1:5] == [24, 32, 64, 320]
    assert [t.shape[-1] for t in stages] == [16, 8, 4, 2, 1, 1]  # strides 2, 4, 8, 16, 32, 32
    out = model.train()(torch.rand(2, 3, *SIZE))
    assert out["logits"].shape == (2, 9) and out["features"].shape == out["embeddings"].shape == (2, 1280)
    assert out["stem_features"].shape == (2, 32) and not out["stem_features"].requires_grad
    with torch.no_grad():
        emb = model.eval()(torch.rand(3, 3, *SIZE))
    assert emb.shape == (3, 1280) and torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)


def test_mobilenetv2_backbone_matches_torchvision_params_and_loads_its_weights(tmp_path: Path) -> None:
    torch.manual_seed(3)
    reference = torchvision.models.mobilenet_v2(weights=None)
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(reference.state_dict(), path)  # includes classifier.*, which is ignored
    model = build_model("mobilenetv2", num_classes=5, pretrained=str(path))
    feature_params = sum(p.numel() for p in reference.features.parameters())
    assert sum(p.numel() for p in model.backbone.parameters()) == feature_params
    assert torch.equal(model.backbone.stem[0][0].weight, reference.features[0][0].weight)
    assert torch.equal(model.backbone.final_conv[0][0].weight, reference.features[18][0].weight)
    with pytest.raises(InvalidInputError, match="does not match the backbone"):
        build_model("resnet50", num_classes=5, pretrained=str(path))
