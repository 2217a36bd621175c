"""The synthetic visible-infrared set: deterministic, parsable in both layouts, thermal look."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_reid.data import build_dataset
from edge_reid.data.datasets.base import INFRARED, VISIBLE
from edge_reid.data.synthetic.identity import sample_identity
from edge_reid.data.synthetic.infrared import SKIN_LEVEL, thermal_identity
from edge_reid.data.synthetic.vi_dataset import generate_vi_dataset
from edge_reid.errors import InvalidInputError


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_sysu_layout_is_deterministic_and_parses(tmp_path: Path) -> None:
    a = generate_vi_dataset(tmp_path / "a", "sysu", num_ids=8, seed=3, images_per_id_per_cam=1)
    b = generate_vi_dataset(tmp_path / "b", "sysu", num_ids=8, seed=3, images_per_id_per_cam=1)
    c = generate_vi_dataset(tmp_path / "c", "sysu", num_ids=8, seed=4, images_per_id_per_cam=1)
    assert _digest(a) == _digest(b) != _digest(c)
    ds = build_dataset("sysu_mm01", a, verbose=False)
    assert ds.num_train_pids == 6 and {r.pid for r in ds.query} == {7, 8}
    assert {r.modality for r in ds.train} == {VISIBLE, INFRARED}
    for record in ds.query[:3] + ds.gallery[:3]:
        image = cv2.imread(record.path)
        mask = cv2.imread(str((a / "masks" / Path(record.path).relative_to(a)).with_suffix(".png")), 0)
        assert image.shape == (128, 64, 3) and mask.shape == (128, 64) and mask.max() > 0
        grey = (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
        assert grey == (record.modality == INFRARED)
    with pytest.raises(InvalidInputError):
        generate_vi_dataset(tmp_path / "d", "kaist")


def test_infrared_look_keeps_shape_loses_colour(tmp_path: Path) -> None:
    root = generate_vi_dataset(tmp_path / "s", "sysu", num_ids=8, seed=0, images_per_id_per_cam=2)
    ds = build_dataset("sysu_mm01", root, verbose=False)
    ir = [r for r in ds.train if r.modality == INFRARED]
    image = cv2.imread(ir[0].path, 0).astype(np.float32)
    mask = cv2.imread(str((root / "masks" / Path(ir[0].path).relative_to(root)).with_suffix(".png")), 0)
    assert image[mask > 128].mean() > image[mask == 0].mean() + 20  # the body is warmer than the background
    ident = thermal_identity(sample_identity(0, 5))
    assert ident.skin == (SKIN_LEVEL,) * 3 and len(set(ident.top_colour)) == 1
    assert ident.skin[0] > ident.top_colour[0] > ident.shoe_colour[0]


def test_regdb_layout_splits(tmp_path: Path) -> None:
    root = generate_vi_dataset(tmp_path / "r", "regdb", num_ids=6, seed=0, images_per_id_per_cam=2)
    for split in (1, 10):
        ds = build_dataset("regdb", root, verbose=False, split=split)
        assert ds.num_train_pids == 3 and len(ds.query) == 6 and len(ds.gallery) == 6
        assert not {Path(r.path).parent.name for r in ds.train} & {Path(r.path).parent.name for r in ds.query}
    assert (root / "Visible" / "1").is_dir() and list((root / "Thermal" / "1").glob("*.bmp"))


@pytest.mark.slow
def test_default_set_renders_under_a_minute(tmp_path: Path) -> None:
    start = time.perf_counter()
    root = generate_vi_dataset(tmp_path / "default")
    assert time.perf_counter() - start < 60.0
    assert len(build_dataset("sysu_mm01", root, verbose=False).query) > 100
