"""VisNet: the paper's exact parameter count, the output contract, ablation options, weights I/O."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.models import build_model
from edge_reid.models.checkpoint import load_model_from_checkpoint, save_checkpoint
from edge_reid.models.visnet_fusion import ScaleAttentionFusion

SIZE = (64, 32)  # small input: stage 4 is 2 x 1


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def small_visnet() -> torch.nn.Module:
    """One VisNet with 7 ids at 64 x 32, shared by the forward tests (building one takes seconds)."""
    torch.manual_seed(0)
    return build_model("visnet", num_classes=7, input_size=SIZE)


def _meta_model(**options: object) -> torch.nn.Module:
    """Build VisNet with 751 ids on the meta device: shapes only, so counting needs no memory."""
    with torch.device("meta"):
        return build_model("visnet", num_classes=751, **options)


def test_parameter_count_and_breakdown_match_table_iii() -> None:
    model = _meta_model()
    assert _params(model) == 32_411_720
    assert model.parameter_breakdown() == {
        "backbone": 23_508_032,
        "fusion": 4_733_444,
        "semantic_head": 2_628_100,
        "classifier": 1_538_048,
        "bnneck": 4_096,
    }
    assert not model.head.bn.bias.requires_grad  # counted, but frozen
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 32_411_720 - 2048


def test_ablation_options_change_parameter_count_as_expected() -> None:
    full = _params(_meta_model())
    attention = (2048 * 512 + 512) + (512 * 4 + 4)
    assert full - _params(_meta_model(semantic_head=False)) == 2_628_100
    assert full - _params(_meta_model(scale_attention=False)) == attention
    only3 = _meta_model(fuse_stages=[3])
    dropped = (256 + 512) * 2048 + 2 * 2 * 2048 + 2 * (512 + 1)  # proj 1, 2 with BN, two attention outputs
    assert full - _params(only3) == dropped
    assert only3.fusion.scales == (3, 4)
    assert _params(_meta_model(last_stride=1)) == full


def test_training_outputs_have_the_contract_shapes(small_visnet: torch.nn.Module) -> None:
    model = small_visnet.train()
    model.zero_grad()
    out = model(torch.rand(3, 3, *SIZE))
    h, w = SIZE[0] // 32, SIZE[1] // 32
    assert out["logits"].shape == (3, 7)
    assert out["features"].shape == out["embeddings"].shape == (3, 2048)
    assert out["fused_map"].shape == (3, 2048, h, w)
    assert out["semantic_logits"].shape == (3, 4, h, w)
    assert out["scale_weights"].shape == (3, 4)
    assert out["stem_features"].shape == (3, 64) and not out["stem_features"].requires_grad
    assert torch.allclose(out["features"], out["fused_map"].mean(dim=(2, 3)))
    weights = out["scale_weights"]
    assert bool(((weights > 0) & (weights < 1)).all())
    # every part that should learn gets a gradient from the identity and semantic outputs
    (out["logits"].sum() + out["semantic_logits"].sum()).backward()
    for param in (model.fusion.attn_conv1.weight, model.fusion.proj_conv1.weight, model.semantic_head.mlp[0].weight):
        assert param.grad is not None and param.grad.abs().sum() > 0


def test_last_stride_one_doubles_the_fused_map() -> None:
    model = _meta_model(last_stride=1, input_size=SIZE).train()
    out = model(torch.rand(2, 3, *SIZE, device="meta"))  # the meta device propagates shapes only
    assert out["fused_map"].shape[-2:] == (SIZE[0] // 16, SIZE[1] // 16)


def test_scale_weights_depend_on_the_input(small_visnet: torch.nn.Module) -> None:
    model = small_visnet.eval()
    with torch.no_grad():
        a = model.forward_train(model.normalizer(torch.rand(1, 3, *SIZE)))
        b = model.forward_train(model.normalizer(torch.rand(1, 3, *SIZE) * 0.3))
    assert "semantic_logits" not in a  # the semantic head does not run in eval mode
    assert not torch.allclose(a["scale_weights"], b["scale_weights"])


def test_eval_output_is_l2_normalised_embedding(small_visnet: torch.nn.Module) -> None:
    model = small_visnet.eval()
    with torch.no_grad():
        emb = model(torch.rand(2, 3, *SIZE))
    assert emb.shape == (2, 2048)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)


def test_fusion_without_attention_is_the_plain_mean_of_aligned_maps() -> None:
    torch.manual_seed(0)
    fusion = ScaleAttentionFusion(scale_attention=False).eval()
    f1, f2, f3, f4 = (torch.rand(2, c, 16 // 2**i, 8 // 2**i) for i, c in enumerate((256, 512, 1024, 2048)))
    with torch.no_grad():
        fused, weights = fusion(f1, f2, f3, f4)
        maps = fusion.aligned_maps((f1, f2, f3, f4))
    assert not hasattr(fusion, "attn_conv1")
    assert torch.allclose(weights, torch.full((2, 4), 0.25))
    assert [tuple(m.shape) for m in maps] == [(2, 2048, 2, 1)] * 4
    assert torch.allclose(fused, (maps[0] + maps[1] + maps[2] + f4) / 4, atol=1e-6)
    # projections are ReLU outputs resized bilinearly: non-negative
    assert all(bool((m >= 0).all()) for m in maps[:3])


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(EdgeReidError, match="no option 'fuse_stage'"):
        build_model("visnet", num_classes=5, fuse_stage=(1, 2))
    with pytest.raises(InvalidInputError, match="fuse_stages"):
        build_model("visnet", num_classes=5, fuse_stages=(0, 4))
    with pytest.raises(InvalidInputError, match="last_stride"):
        build_model("visnet", num_classes=5, last_stride=3)
    with pytest.raises(InvalidInputError, match="semantic_head"):
        build_model("visnet", num_classes=5, semantic_head="yes")
    with pytest.raises(InvalidInputError, match="input_size"):
        build_model("visnet", num_classes=5, input_size=(64,))


def test_pretrained_backbone_loads_from_local_torchvision_file(tmp_path: Path) -> None:
    torch.manual_seed(1)
    reference = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)  # includes fc.*, which is ignored
    model = build_model("visnet", num_classes=5, pretrained=str(path), input_size=SIZE)
    assert torch.equal(model.backbone.stem[0].weight, reference.conv1.weight)
    assert torch.equal(model.backbone.layer4[2].conv3.weight, reference.layer4[2].conv3.weight)
    assert torch.equal(model.backbone.layer3[0].bn1.running_mean, reference.layer3[0].bn1.running_mean)
    assert "pretrained" not in model.meta().model_options  # a local path never goes into artifacts


def test_pretrained_mismatched_file_names_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "encoder.proj.weight": torch.zeros(4, 4)}, path)
    with pytest.raises(InvalidInputError, match=r"missing keys \[bn1\.bias.*unexpected keys \[encoder\.proj\.weight\]"):
        build_model("visnet", num_classes=5, pretrained=str(path))
    with pytest.raises(InvalidInputError, match="does not exist"):
        build_model("visnet", num_classes=5, pretrained=str(tmp_path / "absent.pth"))


def test_checkpoint_round_trip_keeps_options_and_outputs(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = build_model("visnet", num_classes=6, fuse_stages=(2, 3), semantic_head=False, input_size=SIZE)
    model.train()
    model(torch.rand(4, 3, *SIZE))  # move BN running stats away from their initial values
    model.eval()
    path = save_checkpoint(tmp_path / "visnet.pth", model, model.meta("synthetic"))
    loaded, meta, _ = load_model_from_checkpoint(path)
    assert meta.model == "visnet" and meta.input_size == SIZE and meta.num_ids == 6
    assert loaded.fusion.scales == (2, 3, 4) and loaded.semantic_head is None
    x = torch.rand(2, 3, *SIZE)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
