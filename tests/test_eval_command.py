"""``edge-reid eval`` end to end on a tiny synthetic set, and its bad-input paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Tuple

import cv2
import pytest

from edge_reid.cli import main
from edge_reid.evaluation.visualize import GridLayout

SIZE = ["--input-size", "64", "32"]
FAST = ["--workers", "0", "--batch-size", "32"]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-id, 2-camera synthetic set rendered by ``edge-reid synth``."""
    root = tmp_path_factory.mktemp("syn") / "tiny"
    assert main(["synth", "--out", str(root), "--ids", "10", "--cams", "2", "--seed", "0"]) == 0
    return root


def _eval(root: Path, *extra: str) -> List[str]:
    return ["eval", "--dataset", "synthetic", "--data-root", str(root), *FAST, *extra]


def _table_row(stdout: str) -> Tuple[List[str], List[float]]:
    lines = stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("Rank-1"))
    names = [c.strip() for c in lines[head].split("|")]
    values = [float(c) for c in lines[head + 2].split("|")]
    return names, values


def test_eval_untrained_model_then_same_weights_from_checkpoint(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    assert main(_eval(tiny_root, *SIZE, "--topk", "4", "--out", str(out))) == 0
    stdout = capsys.readouterr().out
    assert "query" in stdout and "gallery" in stdout  # the dataset summary
    names, values = _table_row(stdout)
    assert names == ["Rank-1", "Rank-5", "Rank-10", "Rank-20", "mAP", "mINP"]
    assert all(0.0 <= v <= 100.0 for v in values) and values[0] <= values[1] <= values[2] <= values[3]
    assert f"metrics: {out / 'metrics.json'}" in stdout and f"ranked lists: {out / 'ranked_lists.png'}" in stdout

    report = json.loads((out / "metrics.json").read_text())
    assert report["input_size"] == [64, 32] and report["model"] == "resnet50"
    assert [round(report["metrics"][k], 2) for k in ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")] == values
    picture = cv2.imread(str(out / "ranked_lists.png"), cv2.IMREAD_COLOR)
    assert picture is not None
    assert picture.shape[:2] == GridLayout(rows=min(8, report["num_query"]), topk=4).size

    # the same seeded weights saved as a checkpoint give the same numbers; the size comes from it
    import torch

    from edge_reid.data import build_dataset
    from edge_reid.models import build_model
    from edge_reid.models.checkpoint import save_checkpoint

    num_ids = build_dataset("synthetic", tiny_root, verbose=False).num_train_pids
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=num_ids, input_size=(64, 32))
    ckpt = save_checkpoint(tmp_path / "model.pt", model, model.meta("synthetic"))
    out2 = tmp_path / "run2"
    assert main(_eval(tiny_root, "--checkpoint", str(ckpt), "--out", str(out2))) == 0
    again = json.loads((out2 / "metrics.json").read_text())
    assert again["input_size"] == [64, 32]
    assert again["metrics"] == pytest.approx(report["metrics"], abs=1e-6)


def _one_sentence_error(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-reid: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_missing_data_root_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(_eval(tmp_path / "nowhere", *SIZE)) == 2
    assert "does not exist" in _one_sentence_error(capsys)


def test_corrupt_checkpoint_exits_2(tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    assert main(_eval(tiny_root, "--checkpoint", str(bad))) == 2
    assert "corrupt" in _one_sentence_error(capsys)


def test_folder_without_market_layout_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(_eval(tmp_path, *SIZE)) == 2
    assert "bounding_box_train" in _one_sentence_error(capsys)


def test_bad_numbers_exit_2(tiny_root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(_eval(tiny_root, *SIZE, "--topk", "0")) == 2
    assert "--topk must be at least 1" in _one_sentence_error(capsys)


def test_unreadable_query_is_dropped_and_counted_never_replaced(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    truncated, removed = tmp_path / "truncated", tmp_path / "removed"
    shutil.copytree(tiny_root, truncated)
    shutil.copytree(tiny_root, removed)
    victim = sorted(p.name for p in (tiny_root / "query").glob("*.jpg"))[0]
    data = (truncated / "query" / victim).read_bytes()
    (truncated / "query" / victim).write_bytes(data[: len(data) // 20])  # a truncated JPEG: unreadable
    (removed / "query" / victim).unlink()  # the reference: that query never existed
    bad_gallery = sorted(p.name for p in (tiny_root / "bounding_box_test").glob("*.jpg"))[-1]
    (truncated / "bounding_box_test" / bad_gallery).write_bytes(b"")
    (removed / "bounding_box_test" / bad_gallery).unlink()

    reports = {}
    for name, root in (("truncated", truncated), ("removed", removed)):
        out = tmp_path / f"out-{name}"
        argv = ["eval", "--dataset", "market1501", "--data-root", str(root), *FAST, *SIZE, "--model", "mobilenetv2",
                "--out", str(out)]
        with pytest.warns(RuntimeWarning, match="unreadable") if name == "truncated" else _no_warning():
            assert main(argv) == 0
        reports[name] = (json.loads((out / "metrics.json").read_text()), capsys.readouterr().out)
    bad, ref = reports["truncated"][0], reports["removed"][0]
    # the same numbers as if the image were absent: nothing was put in its place
    assert bad["metrics"] == pytest.approx(ref["metrics"], abs=1e-9) and bad["cmc"] == pytest.approx(ref["cmc"])
    assert (bad["num_query"], bad["num_query_unreadable"], bad["num_query_total"]) == (ref["num_query"], 1, 5)
    assert (bad["num_gallery"], bad["num_gallery_unreadable"]) == (ref["num_gallery"], 1)
    assert ref["num_query_unreadable"] == 0 and ref["num_query_total"] == 4
    assert bad["num_query"] + bad["num_query_no_match"] + bad["num_query_unreadable"] == bad["num_query_total"]
    assert "skipped 1 unreadable" in reports["truncated"][1]


def test_queries_without_a_match_are_counted_and_reported(
    tiny_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    import shutil

    root = tmp_path / "nomatch"
    shutil.copytree(tiny_root, root)
    query = sorted((root / "query").glob("*.jpg"))[0]
    pid, cam = query.name[:4], query.name[5:7]
    for path in (root / "bounding_box_test").glob(f"{pid}_*.jpg"):  # only same-camera (junk) images stay
        if path.name[5:7] != cam:
            path.unlink()
    out = tmp_path / "out"
    assert main(["eval", "--dataset", "market1501", "--data-root", str(root), *FAST, *SIZE, "--model", "mobilenetv2",
                 "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert (report["num_query_no_match"], report["num_query"], report["num_query_total"]) == (1, 4, 5)
    assert "1 without a match" in capsys.readouterr().out
    assert any("1 of 5 queries have no gallery match" in r.getMessage() for r in caplog.records)


class _no_warning:
    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)
