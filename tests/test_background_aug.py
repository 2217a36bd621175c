"""Background augmentation: person pixels untouched, background changed, determinism; mask providers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_reid.data.background_aug import FAMILIES, BackgroundAugment
from edge_reid.data.masks import DatasetMaskProvider, GrabCutMaskProvider, MaskProvider, OnnxSegmenterProvider
from edge_reid.errors import EdgeReidError, InvalidInputError

H, W = 64, 32


def _scene(seed: int = 0) -> np.ndarray:
    """Textured background with a bright central figure (rows 8-56, cols 10-22)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(40, 120, size=(H, W, 3), dtype=np.uint8)
    img[::6, :, :] = 20
    img[8:56, 10:22] = (200, 60, 60)
    img[8:20, 12:20] = (230, 200, 170)
    return img


def _dataset(tmp_path: Path) -> tuple:
    """An image and its mask written in the synthetic dataset's layout."""
    img = _scene()
    img_path = tmp_path / "bounding_box_train" / "0001_c1s1_000001_00.jpg"
    img_path.parent.mkdir(parents=True)
    cv2.imwrite(str(img_path), img[..., ::-1])
    mask = np.zeros((H, W), np.uint8)
    mask[8:56, 10:22] = 255
    mask_dir = tmp_path / "masks" / "bounding_box_train"
    mask_dir.mkdir(parents=True)
    cv2.imwrite(str(mask_dir / "0001_c1s1_000001_00.png"), mask)
    return img, str(img_path), mask > 0


def test_dataset_provider_reads_mask_beside_dataset(tmp_path):
    img, path, person = _dataset(tmp_path)
    m = DatasetMaskProvider()(img, path)
    assert m.dtype == np.float32 and m.shape == (H, W)
    assert np.array_equal(m == 1.0, person) and np.all(m[~person] == 0.0)
    with pytest.raises(InvalidInputError, match="No readable person mask"):
        DatasetMaskProvider()(img, str(tmp_path / "query" / "x.jpg"))
    fallback = DatasetMaskProvider(fallback=GrabCutMaskProvider())(img, str(tmp_path / "query" / "x.jpg"))
    assert fallback.shape == (H, W)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_changes_background_only(tmp_path, family):
    img, path, person = _dataset(tmp_path)
    aug = BackgroundAugment(DatasetMaskProvider(), {family: {"p": 1.0, "strength": 1.0}}, seed=0)
    changed = False
    for _ in range(4):  # families pick a random variant; try a few
        out = aug(img, path)
        assert out.dtype == np.uint8 and out.shape == img.shape
        assert np.array_equal(out[person], img[person])
        changed |= bool(np.any(out[~person] != img[~person]))
    assert changed


def test_all_families_together_and_nothing_when_p_zero(tmp_path):
    img, path, person = _dataset(tmp_path)
    every = {f: {"p": 1.0, "strength": 0.7} for f in FAMILIES}
    out = BackgroundAugment(DatasetMaskProvider(), every, seed=1)(img, path)
    assert np.array_equal(out[person], img[person])
    assert np.mean(out[~person] != img[~person]) > 0.5
    none = BackgroundAugment(DatasetMaskProvider(), {f: {"p": 0.0, "strength": 1.0} for f in FAMILIES}, seed=1)
    assert np.array_equal(none(img, path), img)


def test_deterministic_given_seed_or_generator(tmp_path):
    img, path, _ = _dataset(tmp_path)
    fam = {f: {"p": 0.5, "strength": 0.5} for f in FAMILIES}
    a = [BackgroundAugment(DatasetMaskProvider(), fam, seed=7)(img, path) for _ in range(2)]
    assert np.array_equal(a[0], a[1])
    aug = BackgroundAugment(DatasetMaskProvider(), fam)
    b1 = aug(img, path, rng=np.random.default_rng(3))
    b2 = aug(img, path, rng=np.random.default_rng(3))
    assert np.array_equal(b1, b2)
    outs = [aug(img, path, rng=np.random.default_rng(s)) for s in range(4)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


def test_soft_mask_blends_linearly():
    img = _scene()

    class Half(MaskProvider):
        def __call__(self, image_rgb, path=None):
            return np.full(image_rgb.shape[:2], 0.5, np.float32)

    out = BackgroundAugment(Half(), {"gradient": {"p": 1.0, "strength": 1.0}}, seed=0)(img)
    full = BackgroundAugment(Half(), {"gradient": {"p": 1.0, "strength": 1.0}}, seed=0)
    t = full.rng  # same seed: re-derive the transformed image with the same draws
    t.random()
    grad = FAMILIES["gradient"](img, 1.0, t)
    expected = np.clip(np.round(0.5 * img.astype(np.float32) + 0.5 * grad.astype(np.float32)), 0, 255)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1


def test_bad_family_config_raises():
    with pytest.raises(EdgeReidError, match="'sparkle'"):
        BackgroundAugment(GrabCutMaskProvider(), {"sparkle": {"p": 1.0}})
    with pytest.raises(EdgeReidError, match="'hsv.p'"):
        BackgroundAugment(GrabCutMaskProvider(), {"hsv": {"p": 2.0}})
    with pytest.raises(EdgeReidError, match="unknown key 'prob'"):
        BackgroundAugment(GrabCutMaskProvider(), {"hsv": {"prob": 0.5}})


def test_grabcut_mask_covers_central_figure_more_than_border():
    img = np.full((96, 48, 3), (40, 140, 60), np.uint8)  # plain green scene
    rng = np.random.default_rng(0)
    img = np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    figure = np.zeros((96, 48), bool)
    figure[12:88, 16:32] = True
    img[figure] = (200, 40, 160)
    m = GrabCutMaskProvider()(img, None)
    assert m.shape == (96, 48) and m.dtype == np.float32
    border = np.ones_like(figure)
    border[6:-6, 6:-6] = False
    assert m[figure].mean() > 0.8
    assert m[border].mean() < 0.2


def _bright_segmenter(path: Path) -> None:
    """ONNX graph: 2-class logits, class 1 ('person') wins where the channel mean exceeds 0.5."""
    import onnx
    from onnx import TensorProto, helper

    thr = helper.make_tensor("thr", TensorProto.FLOAT, [1], [0.5])
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["m", "thr"], ["fg"]),
        helper.make_node("Neg", ["fg"], ["bg"]),
        helper.make_node("Concat", ["bg", "fg"], ["logits"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "bright",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, "h", "w"])],
        initializer=[thr],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_onnx_segmenter_provider(tmp_path):
    onnx_path = tmp_path / "seg.onnx"
    _bright_segmenter(onnx_path)
    img = np.full((40, 20, 3), 30, np.uint8)
    img[10:30, 5:15] = 220
    prov = OnnxSegmenterProvider(str(onnx_path), person_class=1, input_size=(20, 10), mean=(0, 0, 0), std=(1, 1, 1))
    m = prov(img, None)
    assert m.shape == (40, 20) and m.dtype == np.float32
    assert m[12:28, 7:13].min() == 1.0 and m[:8].max() == 0.0 and m[:, :3].max() == 0.0
    soft = OnnxSegmenterProvider(str(onnx_path), person_class=1, mean=(0, 0, 0), std=(1, 1, 1), soft=True)(img)
    assert 0.5 < soft[20, 10] < 1.0 and 0.0 < soft[0, 0] < 0.5
    with pytest.raises(EdgeReidError, match="person_class"):
        OnnxSegmenterProvider(str(onnx_path), person_class=5, mean=(0, 0, 0), std=(1, 1, 1))(img)
    with pytest.raises(InvalidInputError, match="does not exist"):
        OnnxSegmenterProvider(str(tmp_path / "missing.onnx"))
