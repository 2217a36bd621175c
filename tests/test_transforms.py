"""Train / test transforms: shape, dtype, range, determinism and the augmentation extremes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_reid.data.transforms import RandomErasing, build_test_transform, build_train_transform
from edge_reid.errors import InvalidInputError
from edge_reid.metadata import IMAGENET_MEAN

SIZE = (32, 16)


def asymmetric_image() -> np.ndarray:
    """An RGB uint8 image whose left and right halves differ (so a flip is visible)."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(SIZE[0], SIZE[1], 3), dtype=np.uint8)
    image[:, : SIZE[1] // 2] = 10
    return image


def test_test_transform_shape_range_and_determinism() -> None:
    image = np.random.default_rng(1).integers(0, 256, size=(50, 30, 3), dtype=np.uint8)
    transform = build_test_transform(SIZE)
    out = transform(image)
    assert out.shape == (3, *SIZE) and out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0 and float(out.max()) > 0.5
    assert torch.equal(out, transform(image))


def test_test_transform_keeps_rgb_values_unnormalised() -> None:
    image = np.zeros((*SIZE, 3), np.uint8)
    image[..., 0] = 255  # pure red
    out = build_test_transform(SIZE)(image)
    assert torch.allclose(out[0], torch.ones(SIZE)) and float(out[1:].abs().max()) == 0.0


def test_train_transform_output_contract() -> None:
    torch.manual_seed(0)
    transform = build_train_transform(SIZE)
    image = np.random.default_rng(2).integers(0, 256, size=(64, 40, 3), dtype=np.uint8)
    outs = [transform(image) for _ in range(4)]
    for out in outs:
        assert out.shape == (3, *SIZE) and out.dtype == torch.float32
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert any(not torch.equal(outs[0], o) for o in outs[1:])  # random


def test_train_transform_seeded_by_torch_rng() -> None:
    transform = build_train_transform(SIZE)
    image = asymmetric_image()
    torch.manual_seed(123)
    a = transform(image)
    torch.manual_seed(123)
    assert torch.equal(a, transform(image))


def test_all_augmentations_off_equals_test_transform() -> None:
    image = asymmetric_image()
    off = build_train_transform(SIZE, flip_p=0.0, pad=0, color_jitter=None, erasing_p=0.0)
    expected = build_test_transform(SIZE)(image)
    for _ in range(5):
        assert torch.equal(off(image), expected)


def test_flip_always_at_p1() -> None:
    image = asymmetric_image()
    flip = build_train_transform(SIZE, flip_p=1.0, pad=0, color_jitter=None, erasing_p=0.0)
    assert torch.equal(flip(image), torch.flip(build_test_transform(SIZE)(image), dims=[2]))


def test_erasing_always_at_p1_with_mean_or_random_fill() -> None:
    torch.manual_seed(0)
    image = torch.zeros(3, 64, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1)
    for _ in range(5):
        out = RandomErasing(p=1.0, area=(0.1, 0.2))(image)
        erased = (out != 0).any(dim=0)
        assert erased.any() and not torch.equal(out, image)
        assert torch.allclose(out[:, erased], mean.expand(3, int(erased.sum())))
        fraction = float(erased.float().mean())
        assert 0.05 <= fraction <= 0.3
    randomly = RandomErasing(p=1.0, area=(0.3, 0.4), fill="random")(image)
    assert float(randomly.max()) <= 1.0 and float(randomly.min()) >= 0.0 and not torch.equal(randomly, image)
    assert torch.equal(RandomErasing(p=0.0)(image), image)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="RGB uint8 H x W x 3"):
        build_test_transform(SIZE)(np.zeros((8, 8), np.uint8))
    with pytest.raises(InvalidInputError, match="RGB uint8 H x W x 3"):
        build_test_transform(SIZE)(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(InvalidInputError, match="input_size"):
        build_test_transform((0, 16))
    with pytest.raises(InvalidInputError, match="erasing_fill"):
        build_train_transform(SIZE, erasing_fill="noise")


def test_color_jitter_changes_colours_within_range() -> None:
    from edge_reid.data.transforms import ColorJitter, ResizeToTensor

    torch.manual_seed(0)
    image = ResizeToTensor(SIZE)(asymmetric_image())
    jitter = ColorJitter(0.4, 0.3, 0.3, 0.2)
    outs = [jitter(image) for _ in range(3)]
    for out in outs:
        assert out.dtype == torch.uint8 and out.shape == image.shape and not torch.equal(out, image)
    assert torch.equal(ColorJitter(0, 0, 0, 0)(image), image)
    with pytest.raises(InvalidInputError, match="color_jitter"):
        build_train_transform(SIZE, color_jitter=(0.1, 0.1, 0.1, 0.9))


def test_camera_style_applies_the_camera_lighting_model() -> None:
    from edge_reid.data.synthetic.cameras import Camera, apply_lighting
    from edge_reid.data.transforms import CameraStyle

    torch.manual_seed(0)
    image = torch.from_numpy(asymmetric_image()).permute(2, 0, 1).contiguous()
    assert torch.equal(CameraStyle(0.0, 0.0, 0.0)(image), image)  # no range: the identity
    assert torch.equal(CameraStyle(0.3, 0.2, 0.1, p=0.0)(image), image)
    grey = torch.full((3, 8, 4), 128, dtype=torch.uint8)
    ratios = []
    for _ in range(20):  # gains only: each channel scaled by its own factor within [0.7, 1.3]
        out = CameraStyle(gains=0.3, contrast=0.0, brightness=0.0)(grey).float()
        assert out.dtype == torch.float32 and bool((out == out[:, :1, :1]).all())  # pointwise, per channel
        ratio = out[:, 0, 0] / 128.0
        assert bool((ratio >= 0.69).all() and (ratio <= 1.31).all())
        ratios.append(ratio)
    spread = torch.stack(ratios)
    assert float((spread[:, 0] - spread[:, 1]).abs().max()) > 0.1  # channels differ: a colour cast
    lifted = CameraStyle(gains=0.0, contrast=0.0, brightness=0.2)(grey).float()
    assert bool((lifted[0] == lifted[1]).all() and (lifted[1] == lifted[2]).all())  # brightness is colourless
    # with pinned draws: the synthetic cameras' own lighting (cameras.apply_lighting), to a grey level
    camera = Camera(1, (1.2, 0.9, 1.0), 0.05, 1.1, 0.0, 0.0, (0.25, 0.25, 0.25, 0.25), 0.0, 0)
    out = CameraStyle.apply(image, torch.tensor(camera.gains), camera.contrast, camera.brightness)
    expected = apply_lighting(image.permute(1, 2, 0).numpy().astype(np.float32) / 255.0, camera) * 255.0
    assert float(np.abs(out.permute(1, 2, 0).numpy().astype(np.float32) - expected).max()) <= 0.51


def test_camera_style_in_the_train_transform_and_its_bad_values() -> None:
    from edge_reid.data.transforms import augment_options

    image = asymmetric_image()
    options = augment_options({"flip_p": 0.0, "pad": 0, "color_jitter": None, "erasing_p": 0.0,
                               "camera_style": {"gains": 0.3}})
    styled = build_train_transform(SIZE, **options)
    plain = build_test_transform(SIZE)(image)
    torch.manual_seed(0)
    outs = [styled(image) for _ in range(4)]
    assert all(o.shape == plain.shape and not torch.equal(o, plain) for o in outs)
    assert float(min(o.min() for o in outs)) >= 0.0 and float(max(o.max() for o in outs)) <= 1.0
    for bad, words in (({"gains": 1.5}, "gains < 1"), ({"p": 2}, "p <= 1"), ({"contrast": -0.1}, "contrast"),
                       ({"gains": "0.2"}, "numbers"), ({"hue": 0.1}, "keys among"), ([0.2], "mapping")):
        with pytest.raises(InvalidInputError, match=words):
            build_train_transform(SIZE, camera_style=bad)
    with pytest.raises(InvalidInputError, match="Unknown augmentation"):
        augment_options({"camera_styles": {}})


def test_stream_config_trains_the_quick_visnet_with_camera_style() -> None:
    from pathlib import Path

    from edge_reid.data.transforms import CameraStyle, augment_options
    from edge_reid.engine.config import load_config

    configs = Path(__file__).resolve().parents[1] / "train" / "configs"
    stream = load_config(configs / "visnet_synthetic_stream.yaml")
    quick = load_config(configs / "visnet_synthetic_quick.yaml")
    assert "camera_style" not in quick["data"]["augment"]
    augment = dict(stream["data"]["augment"])
    assert augment.pop("camera_style") and augment == quick["data"]["augment"]  # only the augmentation differs
    transform = build_train_transform(SIZE, **augment_options(stream["data"]["augment"]))
    assert any(isinstance(step, CameraStyle) for step in transform.transforms)


def test_stream_config_trains_on_people_the_default_set_does_not_hold() -> None:
    """The build evaluates on the default set's test ids: the stream embedder must not have trained on them."""
    from dataclasses import replace
    from pathlib import Path

    from edge_reid.data.synthetic import default_params, sample_identity
    from edge_reid.engine.config import load_config

    stream = load_config(Path(__file__).resolve().parents[1] / "train" / "configs" / "visnet_synthetic_stream.yaml")
    mine, default = {**default_params(), **stream["data"]["options"]}, default_params()
    assert mine["num_ids"] > default["num_ids"]
    default_people = {replace(sample_identity(default["seed"], p), pid=0) for p in range(1, default["num_ids"] + 1)}
    assert not any(replace(sample_identity(mine["seed"], p), pid=0) in default_people
                   for p in range(1, mine["num_ids"] + 1))
