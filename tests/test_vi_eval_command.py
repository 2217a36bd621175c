"""``edge-reid eval --protocol sysu|regdb`` end to end on tiny synthetic visible-infrared trees."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from edge_reid.cli import main
from edge_reid.data.synthetic.vi_dataset import generate_vi_dataset
from edge_reid.errors import InvalidInputError
from edge_reid.evaluation.vi_command import vi_protocol

FAST = ["--workers", "0", "--batch-size", "32", "--model", "mobilenetv2", "--input-size", "32", "16"]


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("vi_eval")
    sysu = generate_vi_dataset(root / "sysu", "sysu", num_ids=12, seed=0, images_per_id_per_cam=2)
    regdb = generate_vi_dataset(root / "regdb", "regdb", num_ids=6, seed=0, images_per_id_per_cam=2)
    return sysu, regdb


def test_sysu_protocol_writes_trials(trees, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sysu, _ = trees
    out = tmp_path / "sysu"
    args = ["eval", "--dataset", "sysu_mm01", "--data-root", str(sysu), *FAST, "--out", str(out)]
    assert main(args + ["--mode", "indoor", "--shots", "10", "--trials", "3"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["protocol"] == "sysu" and report["mode"] == "indoor" and report["shots"] == 10
    assert len(report["trials"]) == 3 and {"rank1", "rank10", "rank20", "mAP", "mINP"} <= set(report["metrics"])
    assert "Rank-1" in capsys.readouterr().out
    assert main(args + ["--protocol", "regdb"]) == 2
    assert "does not fit the dataset" in capsys.readouterr().err
    single = argparse.Namespace(protocol="sysu", dataset="market1501")
    with pytest.raises(InvalidInputError, match="needs a visible-infrared dataset"):
        vi_protocol(single, None)


def test_regdb_one_split(trees, tmp_path: Path) -> None:
    _, regdb = trees
    out = tmp_path / "regdb1"
    assert main(["eval", "--protocol", "regdb", "--data-root", str(regdb), "--dataset", "regdb", *FAST,
                 "--split", "2", "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["splits"] == [2] and report["direction"] == "v2t" and len(report["trials"]) == 1


@pytest.mark.slow  # ten splits: over a minute on the shared 2-core CPU
def test_regdb_protocol_over_splits(trees, tmp_path: Path) -> None:
    _, regdb = trees
    out = tmp_path / "regdb"
    args = ["eval", "--protocol", "regdb", "--dataset", "regdb", "--data-root", str(regdb), *FAST, "--out", str(out)]
    assert main(args + ["--split", "all", "--direction", "t2v"]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["splits"] == list(range(1, 11)) and len(report["trials"]) == 10
    assert report["direction"] == "t2v"
    mean = sum(t["mAP"] for t in report["trials"]) / 10
    assert report["metrics"]["mAP"] == pytest.approx(mean)
    assert main(args + ["--split", "11"]) == 2
