"""SYSU-MM01 and RegDB parsers on tiny trees in the released layouts (written by the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest

from edge_reid.data import DATASETS, build_dataset
from edge_reid.data.datasets.base import INFRARED, VISIBLE
from edge_reid.errors import InvalidInputError
from edge_reid.evaluation.vi_protocol import sample_sysu_gallery

PIXEL = np.zeros((4, 2, 3), np.uint8)


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), PIXEL)


def make_sysu(root: Path) -> Dict[Tuple[int, int], int]:
    """Train ids 1, 2; val id 3; test ids 5, 7, 12. Returns {(test id, 1-based cam): #images}."""
    rng = np.random.default_rng(0)
    counts = {}
    for pid in (1, 2, 3, 5, 7, 12):
        for cam in range(1, 7):
            if (pid + cam) % 5 == 0:
                continue  # this id is not seen by this camera
            n = int(rng.integers(1, 14))
            for k in range(n):
                _image(root / f"cam{cam}" / f"{pid:04d}" / f"{k + 1:04d}.jpg")
            if pid in (5, 7, 12):
                counts[(pid, cam)] = n
    (root / "exp").mkdir()
    (root / "exp" / "train_id.txt").write_text("1,2\n")
    (root / "exp" / "val_id.txt").write_text("3\n")
    (root / "exp" / "test_id.txt").write_text("5,7,12\n")
    (root / "exp" / "available_id.txt").write_text("1,2,3,5,7,12\n")
    return counts


def test_registered() -> None:
    assert {"sysu_mm01", "regdb"} <= set(DATASETS.names())


def test_sysu_splits_and_modalities(tmp_path: Path) -> None:
    counts = make_sysu(tmp_path / "SYSU-MM01")
    ds = build_dataset("sysu_mm01", tmp_path, verbose=False)  # found under the parent
    assert ds.protocol == "sysu"
    assert ds.num_train_pids == 3
    assert all(r.modality == (INFRARED if r.camid in (2, 5) else VISIBLE) for r in ds.train)
    assert {r.pid for r in ds.query} == {5, 7, 12} == {r.pid for r in ds.gallery}
    assert {r.camid for r in ds.query} <= {2, 5} and all(r.modality == INFRARED for r in ds.query)
    assert {r.camid for r in ds.gallery} <= {0, 1, 3, 4} and all(r.modality == VISIBLE for r in ds.gallery)
    assert len(ds.query) == sum(n for (pid, cam), n in counts.items() if cam in (3, 6))


def test_sysu_gallery_sampler_on_the_tree(tmp_path: Path) -> None:
    counts = make_sysu(tmp_path)
    gallery = build_dataset("sysu_mm01", tmp_path, verbose=False).gallery
    for mode, cams in (("all", (1, 2, 4, 5)), ("indoor", (1, 2))):
        pairs = {key for key in counts if key[1] in cams}
        trials: List[List[str]] = []
        for trial in range(10):
            paths = [gallery[i].path for i in sample_sysu_gallery(gallery, mode, 1, trial)]
            assert paths == [gallery[i].path for i in sample_sysu_gallery(gallery, mode, 1, trial)]
            got = sorted((int(Path(p).parent.name), int(Path(p).parent.parent.name[3:])) for p in paths)
            assert got == sorted(pairs)  # exactly one image per (test id, gallery camera) present
            trials.append(paths)
        assert len({tuple(t) for t in trials}) > 1
        multi = [gallery[i] for i in sample_sysu_gallery(gallery, mode, 10, 0)]
        for pid, cam in pairs:
            assert sum(1 for r in multi if (r.pid, r.camid + 1) == (pid, cam)) == min(10, counts[(pid, cam)])


def test_sysu_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no cam1/"):
        build_dataset("sysu_mm01", tmp_path, verbose=False)
    make_sysu(tmp_path)
    (tmp_path / "exp" / "test_id.txt").unlink()
    with pytest.raises(InvalidInputError, match="exp/test_id.txt"):
        build_dataset("sysu_mm01", tmp_path, verbose=False)
    (tmp_path / "exp" / "test_id.txt").write_text("5,x\n")
    with pytest.raises(InvalidInputError, match="not an id"):
        build_dataset("sysu_mm01", tmp_path, verbose=False)


def make_regdb(root: Path, split: int = 1) -> None:
    idx = root / "idx"
    idx.mkdir(parents=True)
    for part, ids in (("train", (1, 2, 3)), ("test", (4, 5))):
        for kind, folder, stem in (("visible", "Visible", "female_daytime_visible"),
                                   ("thermal", "Thermal", "female_daytime_thermal")):
            lines = []
            for label, pid in enumerate(ids):
                for k in range(3):
                    rel = f"{folder}/{pid}/{stem}_{pid * 10 + k:05d}.bmp"
                    _image(root / rel)
                    lines.append(f"{rel} {label if part == 'train' else pid}")
            (idx / f"{part}_{kind}_{split}.txt").write_text("\n".join(lines) + "\n")


def test_regdb_lists_line_by_line_and_directions(tmp_path: Path) -> None:
    make_regdb(tmp_path, split=3)
    ds = build_dataset("regdb", tmp_path, verbose=False, split=3)
    assert ds.protocol == "regdb" and ds.num_train_pids == 3 and len(ds.train) == 18
    assert [r.modality for r in ds.query] == [VISIBLE] * 6 and [r.modality for r in ds.gallery] == [INFRARED] * 6
    assert ds.query[0].path.endswith("Visible/4/female_daytime_visible_00040.bmp") and ds.query[0].pid == 4
    assert {r.camid for r in ds.query} == {0} and {r.camid for r in ds.gallery} == {1}
    rev = build_dataset("regdb", tmp_path, verbose=False, split=3, direction="t2v")
    assert [r.path for r in rev.query] == [r.path for r in ds.gallery]
    with pytest.raises(InvalidInputError, match="train_visible_1.txt"):
        build_dataset("regdb", tmp_path, verbose=False, split=1)
    with pytest.raises(InvalidInputError, match="1 to 10"):
        build_dataset("regdb", tmp_path, verbose=False, split=11)
    with pytest.raises(InvalidInputError, match="v2t or t2v"):
        build_dataset("regdb", tmp_path, verbose=False, split=3, direction="up")
    bad = tmp_path / "idx" / "test_thermal_3.txt"
    bad.write_text(bad.read_text() + "Thermal/5/only_a_path.bmp\n")
    with pytest.raises(InvalidInputError, match="Line 7 of"):
        build_dataset("regdb", tmp_path, verbose=False, split=3)


def test_regdb_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    with pytest.raises(InvalidInputError, match="no Visible/"):
        build_dataset("regdb", tmp_path, verbose=False)
