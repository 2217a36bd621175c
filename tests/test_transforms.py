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
