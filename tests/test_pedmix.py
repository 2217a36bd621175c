"""PedMix: shape and dtype, mixing only inside the claimed regions, determinism, config errors, the trainer's batch path."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import numpy as np
import pytest
import torch

from edge_reid.data.pedmix import PedMix, parse_pedmix, region_map
from edge_reid.errors import InvalidInputError

H, W = 64, 32
ROOT = Path(__file__).resolve().parents[1]


def _batch(dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """4 ids x (2 visible + 2 infrared); image b is filled with the value b + 1 (so a pixel names its source)."""
    pids = torch.tensor([i // 4 for i in range(16)])
    modality = torch.tensor([(i // 2) % 2 for i in range(16)])
    images = torch.stack([torch.full((3, H, W), float(b + 1)) for b in range(16)]).to(dtype)
    return images, pids, modality


def _expected_regions(patch: int, box: Tuple[float, float, float, float], bounds: Tuple[float, float]) -> np.ndarray:
    """Region of every pixel, computed independently (per pixel, from its patch's centre)."""
    x0, y0, x1, y1 = box[0] * W, box[1] * H, box[2] * W, box[3] * H
    out = np.zeros((H, W), np.int64)
    for y in range(H):
        for x in range(W):
            r, c = y // patch, x // patch
            yc = (r * patch + min(r * patch + patch, H)) / 2
            xc = (c * patch + min(c * patch + patch, W)) / 2
            d = math.hypot((xc - (x0 + x1) / 2) / ((x1 - x0) / 2), (yc - (y0 + y1) / 2) / ((y1 - y0) / 2))
            out[y, x] = 0 if d < bounds[0] else (1 if d < bounds[1] else 2)
    return out


@pytest.mark.parametrize("mode", ["swap", "blend"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_keeps_shape_and_dtype_and_labels_source(mode: str, dtype: torch.dtype) -> None:
    images, pids, modality = _batch(dtype)
    mixed, fraction = PedMix(parse_pedmix({"p": 1.0, "mode": mode}))(images, pids, modality,
                                                                     generator=torch.Generator().manual_seed(0))
    assert mixed.shape == images.shape and mixed.dtype == dtype
    assert torch.equal(images, _batch(dtype)[0])  # the input is not modified
    assert bool((fraction > 0).all())
    for b in range(16):  # every changed pixel came from a same-id image of the other modality
        changed = (mixed[b] != images[b]).any(dim=0)
        values = set(mixed[b, 0][changed].double().tolist())
        mates = {float(j + 1) for j in range(16) if pids[j] == pids[b] and modality[j] != modality[b]}
        if mode == "swap":
            assert values and values <= mates
        else:
            assert values and values <= {float(round((b + 1 + m) / 2)) if dtype == torch.uint8 else (b + 1 + m) / 2
                                         for m in mates}


@pytest.mark.parametrize("regions,ratio", [(["center"], 1.0), (["outer"], 0.5), (["center", "sub_center"], 0.25)])
def test_mixes_only_inside_the_claimed_regions(regions: List[str], ratio: float) -> None:
    spec = {"p": 1.0, "regions": regions, "ratios": ratio, "patch_size": 4, "bounds": [0.5, 1.0]}
    expected = _expected_regions(4, (0.0, 0.0, 1.0, 1.0), (0.5, 1.0))
    assert np.array_equal(region_map(parse_pedmix(spec), H, W)[0].repeat_interleave(4, 0).repeat_interleave(4, 1)
                          .numpy(), expected)
    images, pids, modality = _batch()
    mixed, _ = PedMix(parse_pedmix(spec))(images, pids, modality, generator=torch.Generator().manual_seed(3))
    claimed = np.isin(expected, [("center", "sub_center", "outer").index(r) for r in regions])
    for b in range(16):
        changed = (mixed[b] != images[b]).any(dim=0).numpy()
        assert not (changed & ~claimed).any()
        for name in regions:  # each region: its ratio of whole patches
            code = ("center", "sub_center", "outer").index(name)
            patches = int((expected == code).sum()) // 16
            assert int((changed & (expected == code)).sum()) // 16 == round(ratio * patches)


def test_mask_position_follows_the_person() -> None:
    spec = {"p": 1.0, "regions": ["center", "sub_center"], "ratios": 1.0, "patch_size": 4, "position": "mask"}
    images, pids, modality = _batch()
    masks = torch.zeros(16, 1, H, W)
    masks[:, :, 16:48, 4:12] = 1.0  # a person in the upper-left part of the crop, patch-aligned
    mixed, _ = PedMix(parse_pedmix(spec))(images, pids, modality, masks, torch.Generator().manual_seed(0))
    changed = (mixed != images).any(dim=1)
    person = masks[:, 0] > 0.5
    assert bool(changed[person].all()) and not bool(changed[~person].any())
    fixed = parse_pedmix({**spec, "position": "fixed"})
    codes = region_map(parse_pedmix(spec), H, W, masks)
    assert codes.shape == (16, 16, 8) and not torch.equal(codes[0], region_map(fixed, H, W)[0])
    with pytest.raises(InvalidInputError, match="needs the batch's person masks"):
        PedMix(parse_pedmix(spec))(images, pids, modality)


def test_deterministic_for_a_seed() -> None:
    images, pids, modality = _batch()
    pedmix = PedMix(parse_pedmix({"p": 0.5, "ratios": {"center": 0.4, "sub_center": 0.2, "outer": 0.6}}))
    a, _ = pedmix(images, pids, modality, generator=torch.Generator().manual_seed(7))
    b, _ = pedmix(images, pids, modality, generator=torch.Generator().manual_seed(7))
    c, _ = pedmix(images, pids, modality, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_image_without_a_partner_is_left_alone() -> None:
    images, pids, modality = _batch()
    modality = torch.zeros(16, dtype=torch.long)  # visible only: nobody has a partner
    mixed, fraction = PedMix(parse_pedmix({"p": 1.0}))(images, pids, modality)
    assert torch.equal(mixed, images) and float(fraction.sum()) == 0.0


@pytest.mark.parametrize("spec,words", [
    ({"regions": ["center", "head"]}, "unknown region 'head'"),
    ({"ratios": {"outer": 1.5}}, "data.pedmix.ratios.outer' must be a number in [0, 1]"),
    ({"ratios": {"middle": 0.2}}, "unknown region 'middle'"),
    ({"p": -0.1}, "data.pedmix.p' must be a number in [0, 1]"),
    ({"mode": "mask"}, "must be one of swap, blend"),
    ({"position": "pose"}, "must be one of fixed, mask"),
    ({"patch_size": 0}, "patch_size' must be a positive integer"),
    ({"bounds": [1.0, 0.5]}, "bounds' must be two numbers"),
    ({"box": [0.5, 0, 0.4, 1]}, "box' must be"),
    ({"size": 4}, "unknown key(s) ['size']"),
])
def test_bad_config_is_one_sentence(spec: Dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_pedmix(spec)
    assert words in str(info.value) and str(info.value).count("\n") == 0
    assert parse_pedmix({"enabled": False}) is None and parse_pedmix(None) is None


def test_bad_config_exits_2_at_config_time(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from edge_reid.cli import main

    code = main(["train", "-c", str(ROOT / "train/configs/agw_synthetic_vi.yaml"),
                 "--set", "data.pedmix.regions=[center, head]", f"output.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and "unknown region 'head'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    code = main(["train", "-c", str(ROOT / "train/configs/agw_synthetic_vi.yaml"),
                 "--set", "data.pedmix.enabled=true", "data.modality_balanced=false", f"output.dir={tmp_path / 'run'}"])
    assert code == 2 and "needs 'data.modality_balanced: true'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def vi_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edge_reid.data.synthetic.vi_dataset import generate_vi_dataset

    return generate_vi_dataset(tmp_path_factory.mktemp("vi") / "sysu", "sysu", num_ids=12, seed=0,
                               images_per_id_per_cam=2)


def test_masks_travel_with_the_image_through_flip_and_crop(vi_root: Path) -> None:
    from edge_reid.data import build_dataset
    from edge_reid.data.pedmix_masks import paired_transform, read_mask
    from edge_reid.data.transforms import build_train_transform

    dataset = build_dataset("sysu_mm01", str(vi_root), verbose=False)
    mask = read_mask(dataset.train[0].path, dataset.root, (128, 64))
    assert mask.max() == 255 and mask.min() == 0
    transform = build_train_transform((H, W), flip_p=0.5, pad=6, color_jitter=None, erasing_p=0.0)
    seen: Set[bytes] = set()
    for seed in range(6):  # the mask used as the image: both outputs must be the same pixels
        torch.manual_seed(seed)
        image, moved = paired_transform(transform, mask.copy(), mask.copy())
        assert moved.shape == (1, H, W) and torch.equal(image[:1], moved)
        seen.add(moved.numpy().tobytes())
    assert len(seen) > 1  # the draws did vary


def _recorded_inputs(vi_root: Path, out: Path, pedmix: Any) -> List[torch.Tensor]:
    from edge_reid.engine import train

    cfg = {"name": "tiny_vi", "model": {"name": "mobilenetv2"},
           "data": {"dataset": "sysu_mm01", "root": str(vi_root), "input_size": [H, W], "p": 3, "k": 1,
                    "workers": 0, "modality_balanced": True, "pedmix": pedmix,
                    "augment": {"color_jitter": None, "erasing_p": 0.0, "pad": 2}},
           "loss": {"terms": [{"name": "cross_entropy"}]},
           "train": {"epochs": 1, "iters_per_epoch": 2, "threads": 1, "checkpoint_iters": 0},
           "eval": {"enabled": False}, "output": {"dir": str(out), "tensorboard": False}}
    seen: List[torch.Tensor] = []

    def record(module: torch.nn.Module, args: Tuple[Any, ...]) -> None:
        if callable(getattr(module, "meta", None)) and module.training and args and torch.is_tensor(args[0]):
            seen.append(args[0].detach().clone())  # the top-level model's training input

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        train(cfg, verbose=False)
    finally:
        handle.remove()
    return seen


def test_trainer_mixes_the_batch_deterministically(vi_root: Path, tmp_path: Path) -> None:
    spec = {"enabled": True, "p": 1.0, "position": "mask", "ratios": 0.5}
    a = _recorded_inputs(vi_root, tmp_path / "a", spec)
    b = _recorded_inputs(vi_root, tmp_path / "b", spec)
    plain = _recorded_inputs(vi_root, tmp_path / "c", None)
    assert len(a) >= 2 and len(a) == len(b) == len(plain)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], plain[0]) and a[0].shape == plain[0].shape
