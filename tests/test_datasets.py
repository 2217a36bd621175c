"""Dataset parsers on small fake trees that follow each dataset's real naming."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
import pytest

from edge_reid.data import DATASETS, ImageRecord, build_dataset
from edge_reid.data.datasets.market1501 import Market1501
from edge_reid.errors import EdgeReidError, InvalidInputError

_JPEG = cv2.imencode(".jpg", np.full((8, 4, 3), 127, np.uint8))[1].tobytes()


def touch_images(folder: Path, names: Iterable[str]) -> None:
    """Write a tiny valid JPEG under each name (sub-folders created)."""
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_JPEG)


def make_market(root: Path) -> Path:
    """Train: ids 2 (cams 1,2) and 7 (cam 3); query: id 2, 7; gallery: 2, 7, distractor 0, junk -1."""
    touch_images(root / "bounding_box_train", [
        "0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s1_000151_01.jpg",
        "0007_c3s1_000201_02.jpg", "Thumbs.db",
    ])
    touch_images(root / "query", ["0002_c1s1_001051_00.jpg", "0007_c2s1_000301_00.jpg"])
    touch_images(root / "bounding_box_test", [
        "0002_c4s1_000076_01.jpg", "0007_c6s1_000876_02.jpg", "0000_c1s1_000001_01.jpg",
        "0000_c5s1_000002_01.jpg", "-1_c1s1_000401_03.jpg", "-1_c3s1_000026_01.jpg",
    ])
    return root


def test_registry_discovers_every_parser_module() -> None:
    assert {"market1501", "dukemtmc", "msmt17", "cuhk03", "folder"} <= set(DATASETS.names())


def test_market1501_counts_relabel_and_junk(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ds = build_dataset("market1501", root=make_market(tmp_path / "Market"), verbose=True)
    assert [r.pid for r in ds.train] == [0, 0, 1, 1]  # 2 -> 0, 7 -> 1
    assert ds.num_train_pids == 2 and ds.num_train_cams == 3
    assert sorted(r.camid for r in ds.train) == [0, 1, 2, 2]
    assert sorted(r.pid for r in ds.query) == [2, 7]  # original ids kept
    gallery_pids = sorted(r.pid for r in ds.gallery)
    assert gallery_pids == [0, 0, 2, 7]  # distractors kept, junk (-1) dropped
    assert all(isinstance(r, ImageRecord) and Path(r.path).is_file() for r in ds.train + ds.query + ds.gallery)
    out = capsys.readouterr().out
    assert "subset" in out and "# ids" in out and "# cameras" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("gallery"))
    assert [int(v) for v in row.split("|")[1:]] == [3, 4, 4]


def test_market1501_found_under_parent_and_quiet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_market(tmp_path / "Market-1501-v15.09.15")
    ds = Market1501(tmp_path, verbose=False)
    assert ds.dataset_path == tmp_path / "Market-1501-v15.09.15"
    assert len(ds.train) == 4 and capsys.readouterr().out == ""
    assert "train" in ds.summary()


def test_market1501_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="does not exist"):
        build_dataset("market1501", root=tmp_path / "missing", verbose=False)
    (tmp_path / "m" / "bounding_box_test").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match=r"no bounding_box_train/ folder; expected .*PPPP_cCsS"):
        build_dataset("market1501", root=tmp_path / "m", verbose=False)
    touch_images(tmp_path / "e" / "bounding_box_train", ["0001_c1s1_000001_01.jpg"])
    touch_images(tmp_path / "e" / "bounding_box_test", ["0001_c2s1_000001_01.jpg"])
    (tmp_path / "e" / "query").mkdir()
    with pytest.raises(InvalidInputError, match="no query images"):
        build_dataset("market1501", root=tmp_path / "e", verbose=False)
    with pytest.raises(EdgeReidError, match="needs a root folder"):
        build_dataset("market1501", verbose=False)
    with pytest.raises(EdgeReidError, match=r"does not take the option\(s\) \['colour'\]"):
        build_dataset("market1501", root=tmp_path / "e", verbose=False, colour=1)
    with pytest.raises(EdgeReidError, match="Unknown dataset"):
        build_dataset("no-such-dataset")


def test_dukemtmc_same_naming(tmp_path: Path) -> None:
    root = tmp_path / "DukeMTMC-reID"
    touch_images(root / "bounding_box_train", ["0001_c2_f0046182.jpg", "0003_c8_f0035961.jpg"])
    touch_images(root / "query", ["0005_c2_f0046985.jpg"])
    touch_images(root / "bounding_box_test", ["0005_c5_f0051341.jpg", "0000_c1_f0000001.jpg"])
    ds = build_dataset("dukemtmc", root=tmp_path, verbose=False)
    assert ds.name == "dukemtmc" and ds.num_train_pids == 2
    assert sorted(r.camid for r in ds.train) == [1, 7]
    with pytest.raises(InvalidInputError, match="DukeMTMC-reID root"):
        build_dataset("dukemtmc", root=tmp_path / "DukeMTMC-reID" / "query", verbose=False)


def make_msmt(root: Path) -> Path:
    train = ["0000/0000_000_01_0303morning_0015_0.jpg", "0000/0000_001_05_0303morning_0016_0.jpg",
             "0001/0001_000_02_0303morning_0030_1.jpg"]
    val = ["0002/0002_000_15_0303noon_0001_0.jpg"]
    query = ["0000/0000_000_03_0303afternoon_0001_0.jpg"]
    gallery = ["0000/0000_002_07_0303afternoon_0002_0.jpg", "0003/0003_000_11_0303afternoon_0009_0.jpg"]
    touch_images(root / "train", train + val)
    touch_images(root / "test", query + gallery)
    for split, names in (("train", train), ("val", val), ("query", query), ("gallery", gallery)):
        lines = [f"{n} {int(n[:4])}" for n in names]
        (root / f"list_{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_msmt17_lists_cameras_and_val_merge(tmp_path: Path) -> None:
    make_msmt(tmp_path / "MSMT17_V1")
    ds = build_dataset("msmt17", root=tmp_path, verbose=False)
    assert len(ds.train) == 4 and ds.num_train_pids == 3
    assert sorted(r.camid for r in ds.train) == [0, 1, 4, 14]
    assert [r.camid for r in ds.query] == [2] and sorted(r.pid for r in ds.gallery) == [0, 3]
    assert all(Path(r.path).is_file() for r in ds.train + ds.query + ds.gallery)
    no_val = build_dataset("msmt17", root=tmp_path, verbose=False, merge_val=False)
    assert len(no_val.train) == 3 and no_val.num_train_pids == 2


def test_msmt17_errors(tmp_path: Path) -> None:
    root = make_msmt(tmp_path / "m")
    (root / "list_val.txt").unlink()
    with pytest.raises(InvalidInputError, match="no list_val.txt; expected train/, test/"):
        build_dataset("msmt17", root=root, verbose=False)
    root = make_msmt(tmp_path / "n")
    (root / "list_query.txt").write_text("0000/badname.jpg 0\n")
    with pytest.raises(InvalidInputError, match="Line 1 of .*list_query.txt"):
        build_dataset("msmt17", root=root, verbose=False)


def make_cuhk03(root: Path, variant: str, fmt: str) -> Path:
    """5 ids x 2 cameras x 2 images; ids 1-3 train, 4-5 test (query: cam 1, gallery: cam 2)."""
    names, labels, cams = [], [], []
    for pid in range(1, 6):
        for cam in (1, 2):
            for shot in (1, 2):
                names.append(f"1_{pid:03d}_{cam}_{shot:02d}.png")
                labels.append(pid)
                cams.append(cam)
    touch_images(root / f"images_{variant}", names)
    idx = np.arange(1, len(names) + 1)
    lab = np.array(labels)
    split = {
        "filelist": names,
        "labels": labels,
        "camId": cams,
        "train_idx": idx[lab <= 3].tolist(),
        "query_idx": idx[(lab > 3) & (np.array(cams) == 1)].tolist(),
        "gallery_idx": idx[(lab > 3) & (np.array(cams) == 2)].tolist(),
    }
    if fmt == "mat":
        from scipy.io import savemat

        mat = {k: np.array(v, dtype=np.float64).reshape(-1, 1) for k, v in split.items() if k != "filelist"}
        cell = np.empty((len(names), 1), dtype=object)
        for i, name in enumerate(names):
            cell[i, 0] = np.array([name])
        mat["filelist"] = cell
        savemat(str(root / f"cuhk03_new_protocol_config_{variant}.mat"), mat)
    else:
        (root / f"splits_new_{variant}.json").write_text(json.dumps(split))
    return root


@pytest.mark.parametrize("fmt,variant", [("mat", "labeled"), ("json", "detected")])
def test_cuhk03_new_protocol(tmp_path: Path, fmt: str, variant: str) -> None:
    make_cuhk03(tmp_path / "cuhk03", variant, fmt)
    ds = build_dataset("cuhk03", root=tmp_path, verbose=False, variant=variant)
    assert ds.num_train_pids == 3 and len(ds.train) == 12
    assert sorted({r.pid for r in ds.train}) == [0, 1, 2]
    assert sorted({r.pid for r in ds.query}) == [4, 5] and {r.camid for r in ds.query} == {0}
    assert {r.camid for r in ds.gallery} == {1} and len(ds.gallery) == 4
    assert all(f"images_{variant}" in r.path and Path(r.path).is_file() for r in ds.train)


def test_cuhk03_errors(tmp_path: Path) -> None:
    make_cuhk03(tmp_path, "labeled", "json")
    with pytest.raises(InvalidInputError, match="no images_detected/ folder"):
        build_dataset("cuhk03", root=tmp_path, verbose=False, variant="detected")
    with pytest.raises(InvalidInputError, match="variant must be"):
        build_dataset("cuhk03", root=tmp_path, verbose=False, variant="both")
    split = json.loads((tmp_path / "splits_new_labeled.json").read_text())
    split["query_idx"].append(999)
    (tmp_path / "splits_new_labeled.json").write_text(json.dumps(split))
    with pytest.raises(InvalidInputError, match="query_idx entry 999 outside 1..20"):
        build_dataset("cuhk03", root=tmp_path, verbose=False)
    del split["train_idx"]
    (tmp_path / "splits_new_labeled.json").write_text(json.dumps(split))
    with pytest.raises(InvalidInputError, match=r"lacks the field\(s\) \['train_idx'\]"):
        build_dataset("cuhk03", root=tmp_path, verbose=False)


def test_folder_layout_cameras_from_names_and_folders(tmp_path: Path) -> None:
    touch_images(tmp_path / "train", ["0010/0010_c1_a.jpg", "0010/cam3/x.jpg", "0020/img_c2_001.png"])
    touch_images(tmp_path / "query", ["0005/q_c1.jpg"])
    touch_images(tmp_path / "gallery", ["0005/cam2/g.jpg", "0006/g_c3.jpg"])
    ds = build_dataset("folder", root=tmp_path, verbose=False)
    assert [r.pid for r in ds.train] == [0, 0, 1]
    assert [r.camid for r in ds.train] == [0, 2, 1]  # cameras 1, 2, 3 -> 0, 1, 2
    assert [(r.pid, r.camid) for r in ds.query] == [(5, 0)]
    assert sorted((r.pid, r.camid) for r in ds.gallery) == [(5, 1), (6, 2)]


def test_folder_layout_errors(tmp_path: Path) -> None:
    touch_images(tmp_path / "train", ["a/0001_c1.jpg"])
    with pytest.raises(InvalidInputError, match="no query/ folder; expected train/, query/ and gallery/"):
        build_dataset("folder", root=tmp_path, verbose=False)
    touch_images(tmp_path / "query", ["a/nocamera.jpg"])
    (tmp_path / "gallery").mkdir()
    with pytest.raises(InvalidInputError, match="has no c<N> token"):
        build_dataset("folder", root=tmp_path, verbose=False)
