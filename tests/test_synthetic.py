"""The synthetic dataset and video: layout, determinism, masks, errors, difficulty."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_reid.cli import main
from edge_reid.data.datasets.market1501 import Market1501
from edge_reid.data.synthetic import enrolment_images, generate_dataset, sample_identity, write_multicam_video
from edge_reid.evaluation.colour_baseline import colour_histogram, histogram_rank1
from edge_reid.evaluation.features import compute_distance_matrix
from edge_reid.evaluation.metrics import evaluate_rank
from edge_reid.data.synthetic.render import draw_person
from edge_reid.errors import InvalidInputError
from edge_reid.utils.paths import cache_dir

SMALL = dict(num_ids=8, num_cams=3, images_per_id_per_cam=2, num_distractors=4, num_junk=3)
NAME = re.compile(r"^(\d{4}|-1)_c([1-9])s(\d)_(\d{6})_(\d{2})\.jpg$")


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("syn") / "set", seed=3, **SMALL)


def test_same_seed_same_bytes_other_seed_differs(small: Path, tmp_path: Path) -> None:
    again = generate_dataset(tmp_path / "again", seed=3, **SMALL)
    other = generate_dataset(tmp_path / "other", seed=4, **SMALL)
    assert _files(small) == _files(again)
    a, b = _files(small), _files(other)
    common = [k for k in a if k.endswith(".jpg") and k in b]
    assert any(a[k] != b[k] for k in common) or set(a) != set(b)


def test_market_layout_and_parser(small: Path) -> None:
    names = [p.name for d in ("bounding_box_train", "bounding_box_test", "query") for p in (small / d).iterdir()]
    assert names and all(NAME.match(n) for n in names)
    ds = Market1501(small, verbose=False)
    manifest = json.loads((small / "synthetic.json").read_text())
    assert ds.num_train_pids == SMALL["num_ids"] // 2
    assert len(ds.train) == manifest["counts"]["train"]
    test_pids = {r.pid for r in ds.query}
    assert test_pids and 0 not in test_pids
    gallery_pids = {r.pid for r in ds.gallery}
    assert 0 in gallery_pids and -1 not in gallery_pids  # distractors kept, junk dropped
    assert len(list((small / "bounding_box_test").glob("-1_c*.jpg"))) == SMALL["num_junk"]
    assert len(ds.gallery) == manifest["counts"]["gallery"] + manifest["counts"]["distractors"]
    assert len(ds.query) == manifest["counts"]["query"]
    train_pids = {int(p.name[:4]) for p in (small / "bounding_box_train").iterdir()}
    assert train_pids.isdisjoint(test_pids)
    # every query has a match in another camera (the protocol needs it)
    for q in ds.query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in ds.gallery)


def test_masks_present_and_aligned(small: Path) -> None:
    for folder in ("bounding_box_train", "bounding_box_test", "query"):
        for img_path in (small / folder).glob("*.jpg"):
            mask = cv2.imread(str(small / "masks" / folder / f"{img_path.stem}.png"), cv2.IMREAD_GRAYSCALE)
            assert mask is not None and mask.shape == (128, 64)
            if not img_path.name.startswith(("0000", "-1")):
                assert 0.1 < (mask > 127).mean() < 0.8
    person, alpha = draw_person(sample_identity(0, 1), "back", 120)
    painted = person.max(axis=2) > 0
    assert np.array_equal(painted, alpha > 0)


def test_bad_input_is_one_sentence_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(InvalidInputError):
        generate_dataset(tmp_path / "a", num_ids=1, num_cams=3)
    with pytest.raises(InvalidInputError):
        generate_dataset(tmp_path / "a", num_ids=4, num_cams=1)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError):
        generate_dataset(precious, **SMALL)
    assert [p.name for p in precious.iterdir()] == ["keep.txt"]
    assert main(["synth", "--out", str(precious), "--ids", "4", "--cams", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not empty" in err[0]
    assert main(["synth", "--out", str(tmp_path / "b"), "--ids", "1"]) == 2
    assert main(["synth", "--video", "--out", str(tmp_path / "v"), "--cams", "1"]) == 2


def test_regenerating_replaces_a_synthetic_folder(small: Path, tmp_path: Path) -> None:
    out = generate_dataset(tmp_path / "r", seed=1, **SMALL)
    first = _files(out)
    generate_dataset(out, seed=2, **SMALL)
    assert _files(out) != first and json.loads((out / "synthetic.json").read_text())["params"]["seed"] == 2


def test_registered_default_is_generated_once_under_the_cache() -> None:
    from edge_reid.data.datasets.synthetic import default_root

    root = default_root(**SMALL)
    assert root.parent == cache_dir() / "synthetic"
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    assert default_root(**SMALL) == root and (root / "synthetic.json").stat().st_mtime_ns == stamp
    from edge_reid.data import build_dataset

    ds = build_dataset("synthetic", root=root, verbose=False)
    assert ds.num_train_pids == SMALL["num_ids"] // 2
    # the generator's parameters as dataset options (a config's data.options) pick that set
    assert Path(build_dataset("synthetic", verbose=False, **SMALL).root) == root
    with pytest.raises(InvalidInputError, match="num_people"):
        build_dataset("synthetic", verbose=False, num_people=4)
    with pytest.raises(InvalidInputError, match="generated set only"):
        build_dataset("synthetic", root=root, verbose=False, num_ids=8)


def test_video_frames_and_ground_truth(tmp_path: Path) -> None:
    out = write_multicam_video(tmp_path / "v", num_people=3, num_cams=2, seed=1, frames=30, size=(320, 180))
    manifest = json.loads((out / "synthetic_video.json").read_text())
    gt = [json.loads(line) for line in (out / "ground_truth.jsonl").read_text().splitlines()]
    for cam, name in manifest["videos"].items():
        cap = cv2.VideoCapture(str(out / name))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        assert len(frames) == 30 and frames[0].shape == (180, 320, 3)
        for g in (g for g in gt if g["camera"] == int(cam)):
            x1, y1, x2, y2 = g["box"]
            assert 0 <= g["frame"] < 30 and 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 180
    cams_of = {}
    for g in gt:
        cams_of.setdefault(g["pid"], set()).add(g["camera"])
    assert set(cams_of) == {1, 2, 3} and all(len(c) == 2 for c in cams_of.values())
    crops = enrolment_images([1, 2], seed=1, n=3)
    assert sorted(crops) == [1, 2] and all(c.shape == (128, 64, 3) and c.dtype == np.uint8 for c in crops[1])


def test_colour_histogram_is_not_enough(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path / "d", num_ids=40, num_cams=4, seed=0, images_per_id_per_cam=2,
                            num_distractors=20, num_junk=0)
    ds = Market1501(root, verbose=False)
    chance = 1.0 / len({r.pid for r in ds.query})
    whole = histogram_rank1(ds, bins=4)
    assert whole < 0.6  # raw colour does not solve the task

    def person_hist(path: str) -> np.ndarray:  # colour of the person alone still identifies
        p = Path(path)
        mask = cv2.imread(str(p.parents[1] / "masks" / p.parent.name / f"{p.stem}.png"), cv2.IMREAD_GRAYSCALE)
        h = cv2.calcHist([cv2.imread(path)], [0, 1, 2], mask, [4] * 3, [0, 256] * 3).ravel()
        return h / max(1.0, h.sum())

    gallery = [r for r in ds.gallery if r.pid > 0]
    qf = np.stack([person_hist(r.path) for r in ds.query])
    gf = np.stack([person_hist(r.path) for r in gallery])
    cmc, _, _ = evaluate_rank(compute_distance_matrix(qf, gf), np.array([r.pid for r in ds.query]),
                              np.array([r.pid for r in gallery]), np.array([r.camid for r in ds.query]),
                              np.array([r.camid for r in gallery]), max_rank=1)
    masked = float(cmc[0])
    assert masked > 3 * chance  # identities are consistent across cameras, not noise
    assert colour_histogram(ds.query[0].path).shape == (64 * 8,)


def test_lookalike_fraction_pairs_ids_that_differ_in_one_detail(tmp_path: Path) -> None:
    from edge_reid.data.datasets.synthetic import SyntheticDataset
    from edge_reid.data.synthetic.dataset import _person, keyed_params, params_key

    pairs = [p for p in range(2, 41, 2) if _person(3, p, 1.0, 21) != sample_identity(3, p)]
    assert 22 not in pairs and pairs == [p for p in range(2, 41, 2) if p != 22], "never across the split"
    for p in pairs:
        a, b = sample_identity(3, p - 1).to_dict(), _person(3, p, 1.0, 21).to_dict()
        assert len([k for k in a if a[k] != b[k] and k != "pid"]) == 1
    assert _person(3, 3, 1.0, 21) == sample_identity(3, 3)  # odd ids are themselves
    half = sum(_person(3, p, 0.5, 200) != sample_identity(3, p) for p in range(2, 401, 2))
    assert 60 <= half <= 140
    root = generate_dataset(tmp_path / "twins", seed=3, lookalike_fraction=1, **SMALL)
    manifest = json.loads((root / "synthetic.json").read_text())
    plain = {k: v for k, v in manifest["params"].items() if k != "lookalike_fraction"}
    # the key a config's options give (int 1 or 0 as written in YAML) is the key the generator records
    assert manifest["key"] == params_key(keyed_params({**plain, "lookalike_fraction": 1}))
    assert manifest["key"] != params_key(plain), "a look-alike set is cached apart from the plain one"
    assert params_key(keyed_params({**plain, "lookalike_fraction": 0})) == params_key(plain)
    for bad in (1.5, "half", None):
        with pytest.raises(InvalidInputError, match="look-alike fraction"):
            generate_dataset(tmp_path / "bad", seed=3, lookalike_fraction=bad, **SMALL)
    with pytest.raises(InvalidInputError, match="does not take"):
        SyntheticDataset(verbose=False, lookalike=0.5)
