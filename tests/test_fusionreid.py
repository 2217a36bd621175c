"""FusionReID: sizes against the release, the forward contract, camera ids, pretrained ViT loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from edge_reid.bench.complexity import complexity
from edge_reid.data.transforms import RandomErasing
from edge_reid.engine.config import load_config
from edge_reid.engine.optim import EpochSchedule, build_optimizer
from edge_reid.losses import LossComposer
from edge_reid.errors import InvalidInputError
from edge_reid.models import build_model
from edge_reid.models.fusionreid import FEATURES
from edge_reid.models.vit import VisionTransformer
from edge_reid.models.vit_pretrained import load_vit_weights

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"
#: A reduced FusionReID that runs in a fraction of a second on the CPU (full ResNet50 trunk).
SMALL = dict(input_size=(64, 32), patch_size=8, patch_stride=6, vit_dim=96, vit_depth=2, vit_heads=3,
             mix_dim=96, htm_layers=1, num_cameras=3)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _on_meta(**options: object) -> torch.nn.Module:
    with torch.device("meta"):
        return build_model("fusionreid", num_classes=751, **options)


def test_parameter_count_equals_the_release_with_its_unused_vit_head() -> None:
    model = _on_meta(keep_vit_head=True, num_cameras=6)
    classifiers = sum(h.classifier.weight.numel() for h in model.heads.values())
    assert _count(model) == 173_400_111
    assert _count(model) - classifiers == 168_978_223
    parts = {name: _count(getattr(model, name)) for name in ("resnet", "vit", "lru_cnn", "lru_vit", "htm")}
    assert parts == {"resnet": 23_508_032, "vit": 86_583_016, "lru_cnn": 1_583_362, "lru_vit": 595_202,
                     "htm": 56_696_832}
    assert model.vit.sie_embed.numel() == 6 * 768 and model.vit.grid == (21, 10)


def test_default_model_drops_only_the_unused_head_and_counts_29_gmacs() -> None:
    model = _on_meta(camera_mode="off")  # SIE adds no multiply-adds; meta tensors cannot be checked as ids
    report = complexity(model, (256, 128))
    assert abs(report.gmacs - 29.07) / 29.07 < 0.005
    with_sie = _count(model) + 6 * 768
    assert with_sie == 173_400_111 - 769_000
    assert abs(with_sie - 173_400_111) / 173_400_111 < 0.005
    assert model.embedding_dim == 5888


def test_shared_seu_and_mixing_dimension_options() -> None:
    shared = _on_meta(shared_seu=True, keep_vit_head=True)
    assert round(_count(shared.htm) / 1e6, 2) == 42.52 and round(_count(shared) / 1e6, 1) == 159.2
    narrow = _on_meta(mix_dim=384, keep_vit_head=True)
    assert round(_count(narrow) / 1e6, 1) == 128.7 and narrow.embedding_dim == 2048 + 768 + 4 * 384
    assert len(_on_meta(htm_layers=4).htm) == 4
    with pytest.raises(InvalidInputError, match="htm_layers"):
        build_model("fusionreid", num_classes=5, htm_layers=7)
    with pytest.raises(InvalidInputError, match="resnet_stem"):
        build_model("fusionreid", num_classes=5, resnet_stem="fancy")


def test_release_stem_has_no_relu_and_a_2x2_pool_with_the_same_shapes() -> None:
    model = _on_meta(resnet_stem="release")
    kinds = [type(m).__name__ for m in model.resnet.stem]
    assert kinds == ["Conv2d", "BatchNorm2d", "MaxPool2d"] and model.resnet.stem[2].kernel_size == 2
    x = torch.rand(1, 3, 256, 128, device="meta")
    assert model.resnet(model.normalizer(x))[-1].shape == (1, 2048, 16, 8)


def test_eval_returns_normalised_5888_style_vectors_also_at_batch_one() -> None:
    torch.manual_seed(0)
    model = build_model("fusionreid", num_classes=7, **SMALL).eval()
    with torch.no_grad():
        for batch in (1, 3):
            emb = model(torch.rand(batch, 3, 64, 32), torch.zeros(batch, dtype=torch.long))
            assert emb.shape == (batch, 2048 + 96 + 4 * 96)
            assert torch.allclose(emb.norm(dim=1), torch.ones(batch), atol=1e-5)


def test_training_outputs_six_features_each_with_logits() -> None:
    torch.manual_seed(0)
    model = build_model("fusionreid", num_classes=7, **SMALL).train()
    out = model(torch.rand(4, 3, 64, 32), torch.tensor([0, 1, 2, 0]))
    dims = {"resnet": 2048, "vit": 96, "lru_cnn": 96, "lru_vit": 96, "htm_cnn": 96, "htm_vit": 96}
    for name in FEATURES:
        assert out[f"features_{name}"].shape == (4, dims[name]) and out[f"logits_{name}"].shape == (4, 7)
    assert torch.equal(out["features"], torch.cat([out[f"features_{n}"] for n in FEATURES], dim=1))
    cfg = load_config(CONFIGS / "fusionreid_market.yaml")  # the release's 12 loss terms, summed
    result = LossComposer.from_config(cfg["loss"])(out, torch.tensor([0, 0, 1, 1]))
    assert len(result.terms) == 12 and set(result.weights.values()) == {1.0}
    assert torch.allclose(result.total, sum(result.terms.values()))
    result.total.backward()
    assert model.htm[0].mfu_vit.mlp.fc2.weight.grad is not None and model.gem_cnn.p.grad is not None


def test_camera_ids_change_the_embedding_and_are_checked() -> None:
    torch.manual_seed(0)
    model = build_model("fusionreid", num_classes=7, **SMALL).eval()
    assert model.meta().inputs == ("images", "camera_ids")
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        a, b = model(x, torch.tensor([0, 0])), model(x, torch.tensor([2, 2]))
        assert torch.allclose(model(x, 0), a)  # one int broadcasts to the batch
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(InvalidInputError, match="needs a camera id"):
        model(x)
    with pytest.raises(InvalidInputError, match=r"0\.\.2 .*got 0\.\.3"):
        model(x, torch.tensor([0, 3]))
    with pytest.raises(InvalidInputError, match="2 integers"):
        model(x, torch.tensor([0.0, 1.0]))


def test_camera_modes_off_and_unknown_need_no_camera_at_test_time() -> None:
    torch.manual_seed(0)
    off = build_model("fusionreid", num_classes=7, camera_mode="off", **SMALL).eval()
    assert off.meta().inputs == ("images",) and off.vit.sie_embed is None
    unknown = build_model("fusionreid", num_classes=7, camera_mode="unknown", unknown_camera_p=1.0, **SMALL)
    assert unknown.meta().inputs == ("images",) and unknown.vit.sie_embed.shape[0] == 4
    x = torch.rand(2, 3, 64, 32)
    unknown.eval()
    with torch.no_grad():
        assert torch.allclose(unknown(x), unknown(x, torch.tensor([1, 2])))  # the deployed model ignores cameras
    unknown.train()
    assert unknown.camera_index(torch.tensor([0, 1]), 2, x.device).tolist() == [3, 3]  # p = 1: always unknown
    unknown.unknown_camera_p = 0.0
    assert unknown.camera_index(torch.tensor([0, 1]), 2, x.device).tolist() == [0, 1]  # p = 0: the real cameras
    from edge_reid.engine.trainer import takes_camera_ids
    assert takes_camera_ids(unknown) and takes_camera_ids(off)  # the trainer feeds cameras in every mode


def _timm_layout(path: Path, patch: int, dim: int, depth: int, heads: int, head: bool = True) -> dict:
    """A timm-style vit_*_224 state dict from a randomly initialised ViT (224x224, stride = patch)."""
    vit = VisionTransformer((224, 224), patch, patch, dim, depth, heads, num_cameras=0)
    state = dict(vit.state_dict())
    if head:
        state["head.weight"], state["head.bias"] = torch.randn(1000, dim), torch.randn(1000)
    torch.save(state, path)
    return state


def test_vit_weights_load_with_position_embeddings_resized_to_the_grid(tmp_path: Path) -> None:
    state = _timm_layout(tmp_path / "vit.pth", patch=8, dim=96, depth=2, heads=3)
    model = build_model("fusionreid", num_classes=5, pretrained_vit=str(tmp_path / "vit.pth"), **SMALL)
    vit = model.vit
    assert torch.equal(vit.blocks[1].attn.qkv.weight, state["blocks.1.attn.qkv.weight"])
    assert torch.equal(vit.patch_embed.proj.weight, state["patch_embed.proj.weight"])
    rows, cols = vit.grid  # (10, 5) for 64x32 with 8-pixel patches at stride 6
    assert vit.pos_embed.shape == (1, 1 + rows * cols, 96)
    grid = state["pos_embed"][:, 1:].reshape(1, 28, 28, 96).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(rows, cols), mode="bilinear", align_corners=False)
    assert torch.allclose(vit.pos_embed[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, -1, 96))
    assert torch.equal(vit.pos_embed[:, 0], state["pos_embed"][:, 0])
    assert "pretrained_vit" not in model.meta().model_options  # a local path is not architecture


@pytest.mark.parametrize("patch,dim,match", [(16, 96, "16-pixel patches of width 96"),
                                             (8, 192, "8-pixel patches of width 192")])
def test_vit_weights_of_another_patch_size_or_width_are_refused(tmp_path: Path, patch: int, dim: int, match: str) -> None:
    _timm_layout(tmp_path / "vit.pth", patch=patch, dim=dim, depth=2, heads=3)
    vit = VisionTransformer((64, 32), 8, 6, 96, 2, 3)
    with pytest.raises(InvalidInputError, match=match):
        load_vit_weights(vit, tmp_path / "vit.pth")


def test_vit_weights_with_missing_keys_name_them(tmp_path: Path) -> None:
    state = _timm_layout(tmp_path / "vit.pth", patch=8, dim=96, depth=2, heads=3)
    del state["blocks.1.mlp.fc2.bias"], state["norm.weight"]
    torch.save(state, tmp_path / "cut.pth")
    vit = VisionTransformer((64, 32), 8, 6, 96, 2, 3)
    with pytest.raises(InvalidInputError, match=r"missing keys blocks\.1\.mlp\.fc2\.bias, norm\.weight"):
        load_vit_weights(vit, tmp_path / "cut.pth")
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_vit_weights(vit, tmp_path / "nothing.pth")


@pytest.mark.slow
def test_full_size_model_from_torchvision_and_timm_files(tmp_path: Path) -> None:
    """The full model: ImageNet-layout files of ResNet50 and ViT-B/16 load; 256x128 eval at batch 1."""
    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet50(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "resnet50.pth")
    state = _timm_layout(tmp_path / "vit_base_patch16_224.pth", patch=16, dim=768, depth=12, heads=12)
    model = build_model("fusionreid", num_classes=751, pretrained_resnet=str(tmp_path / "resnet50.pth"),
                        pretrained_vit=str(tmp_path / "vit_base_patch16_224.pth")).eval()
    assert torch.equal(model.resnet.layer3[2].conv2.weight, resnet.layer3[2].conv2.weight)
    assert torch.equal(model.vit.blocks[11].mlp.fc1.weight, state["blocks.11.mlp.fc1.weight"])
    assert model.vit.pos_embed.shape == (1, 211, 768)
    report = complexity(model, (256, 128))
    assert report.params == 172_631_111 and abs(report.gmacs - 29.07) / 29.07 < 0.005
    with torch.no_grad():
        emb = model(torch.rand(1, 3, 256, 128), torch.tensor([5]))
    assert emb.shape == (1, 5888) and abs(float(emb.norm()) - 1.0) < 1e-5


def test_recipe_pieces_bias_lr_factor_and_per_pixel_normal_erasing() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    cfg = load_config(CONFIGS / "fusionreid_market.yaml")
    optimizer = build_optimizer(model, cfg["optim"])
    schedule = EpochSchedule(cfg["schedule"], cfg["train"]["epochs"])
    base = schedule.apply(optimizer, cfg["optim"]["lr"], 0)
    assert base == pytest.approx(0.005 * 0.01)  # warm-up starts at 0.01 x lr
    groups = sorted((g["lr_factor"], len(g["params"])) for g in optimizer.param_groups)
    assert groups == [(1.0, 1), (1.0, 1), (2.0, 2)]  # weights, BN weight, the two biases
    bias_group = [g for g in optimizer.param_groups if g["lr_factor"] == 2.0]
    assert len(bias_group) == 1 and len(bias_group[0]["params"]) == 2  # Linear and BN biases
    assert bias_group[0]["lr"] == pytest.approx(2 * base)
    assert schedule.factor(cfg["train"]["epochs"]) == pytest.approx(0.002)  # the cosine floor
    torch.manual_seed(0)
    erased = RandomErasing(p=1.0, area=(0.3, 0.3), fill="normal")(torch.full((3, 64, 32), 0.5))
    changed = erased != 0.5
    assert changed.any() and erased[changed].std() > 0.3  # per-pixel noise, not one colour
