"""DCS-FB models follow the forward contract of every model."""

from __future__ import annotations

import pytest
import torch

from edge_reid.errors import EdgeReidError
from edge_reid.models import build_model
from edge_reid.models.dcs_attention import DCSAttention


@pytest.fixture(scope="module")
def mobilenet():
    torch.manual_seed(0)
    return build_model("dcs_mobilenetv2", 5, input_size=(64, 32))


def test_dcs_mobilenetv2_forward_contract(mobilenet) -> None:
    x = torch.rand(4, 3, 64, 32)
    mobilenet.train()
    out = mobilenet(x)
    assert out["logits"].shape == (4, 5)
    assert out["features"].shape == out["embeddings"].shape == (4, 1280)
    assert out["stem_features"].shape == (4, 32) and not out["stem_features"].requires_grad
    mobilenet.eval()
    emb = mobilenet(x)
    assert emb.shape == (4, 1280)
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    assert mobilenet.meta("synthetic").model == "dcs_mobilenetv2"


def test_dcs_mobilenetv2_blocks_sit_after_the_stages(mobilenet) -> None:
    blocks = {k: m.channels for k, m in mobilenet.attention.items()}
    assert blocks == {"1": 24, "2": 32, "3": 64, "4": 320}
    assert set(mobilenet.kept_fractions()) == {"stage1", "stage2", "stage3", "stage4"}


def test_dcs_model_at_init_matches_plain_backbone() -> None:
    torch.manual_seed(0)
    dcs = build_model("dcs_mobilenetv2", 3, insert_after=[2, 4]).eval()
    plain = build_model("mobilenetv2", 3).eval()
    # Same backbone and head weights (DCS keys are extra): zero-initialised BN makes them equal.
    state = {k: v for k, v in dcs.state_dict().items() if not k.startswith("attention.")}
    mapped = {}
    for k, v in state.items():
        k = k.replace("stages.0.", "backbone.stage1.").replace("stages.1.", "backbone.stage2.")
        k = k.replace("stages.2.", "backbone.stage3.").replace("stages.3.", "backbone.stage4.")
        k = k.replace("stem.", "backbone.stem.", 1) if k.startswith("stem.") else k
        k = k.replace("final.", "backbone.final_conv.", 1) if k.startswith("final.") else k
        mapped[k] = v
    plain.load_state_dict(mapped)
    x = torch.rand(2, 3, 64, 32)
    assert torch.allclose(dcs(x), plain(x), atol=1e-5)
    assert sorted(dcs.attention) == ["2", "4"]


@pytest.mark.slow
def test_dcs_resnet50_forward_contract() -> None:
    model = build_model("dcs_resnet50", 4, vanilla=True, input_size=(64, 32)).train()
    out = model(torch.rand(2, 3, 64, 32))
    assert out["embeddings"].shape == (2, 2048) and out["stem_features"].shape == (2, 64)
    assert {k: m.channels for k, m in model.attention.items()} == {"1": 256, "2": 512, "3": 1024, "4": 2048}
    assert all(isinstance(m, DCSAttention) and m.vanilla for m in model.attention.values())


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(EdgeReidError, match="insert_after"):
        build_model("dcs_mobilenetv2", 3, insert_after=[0, 5])
    with pytest.raises(EdgeReidError, match="no option"):
        build_model("dcs_mobilenetv2", 3, heads=2)
