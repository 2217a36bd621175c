"""The build pipeline end to end on the CPU (ONNX Runtime backend), gates and the manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edge_reid.cli import main
from edge_reid.models import build_model
from edge_reid.models.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=3, input_size=(64, 32)).eval()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.pth", model, model.meta("test"))


def _build(ckpt: Path, out: Path, *extra: str) -> int:
    return main(["build", "--checkpoint", str(ckpt), "--calib-random", "--calib-images", "16",
                 "--eval-dataset", "none", "--latency-iters", "2", "--batch", "1,4,8", "--backend", "onnxruntime",
                 "--out", str(out), *extra])


def test_build_writes_every_artifact_and_a_manifest(small_checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert _build(small_checkpoint, tmp_path / "out") == 0
    printed = capsys.readouterr().out
    assert "Latency and accuracy" in printed and str(tmp_path / "out") in printed
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert set(manifest["artifacts"]) == {"fp32", "fp16", "int8_trt", "int8_cpu"}
    assert all(Path(p).is_file() for p in manifest["artifacts"].values())
    assert manifest["backend"] == "onnxruntime" and all(r["passed"] for r in manifest["parity"])
    fp32 = next(r for r in manifest["parity"] if r["precision"] == "fp32")
    assert fp32["reference"] == "torch" and fp32["max_abs_diff"] <= 1e-4
    assert {(r["precision"], r["batch"]) for r in manifest["latency"]} >= {("fp32", 1), ("int8-cpu", 4)}
    assert manifest["compat"]["int8_trt"]["ok"] and manifest["compat"]["fp32"]["ok"]
    assert (tmp_path / "out" / "int8_sensitivity.csv").is_file()  # --int8-keep-float auto is the default
    assert "INT8 sensitivity" in printed


def test_gate_failure_exits_2_with_the_numbers(small_checkpoint: Path, tmp_path: Path, capsys) -> None:
    code = _build(small_checkpoint, tmp_path / "out", "--precisions", "fp32,fp16", "--fp16-min-cosine", "1.5")
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Parity gate failed" in err and "below the gate 1.5" in err and err.count("\n") == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert not next(r for r in manifest["parity"] if r["precision"] == "fp16")["passed"]


def test_bad_batch_profile_is_one_sentence(small_checkpoint: Path, tmp_path: Path, capsys) -> None:
    assert _build(small_checkpoint, tmp_path / "out", "--batch", "8,4,2") == 2
    assert "1 <= min <= opt <= max" in capsys.readouterr().err


@pytest.mark.slow
def test_default_build_runs_end_to_end(tmp_path: Path) -> None:
    """No arguments: quick VisNet training (cached), synthetic data, every precision, gates."""
    assert main(["build", "--out", str(tmp_path / "default"), "--latency-iters", "3"]) == 0
    manifest = json.loads((tmp_path / "default" / "manifest.json").read_text())
    assert manifest["meta"]["model"] == "visnet" and all(r["passed"] for r in manifest["parity"])
    assert all(r["rank1"] is not None for r in manifest["parity"])


def test_quick_checkpoint_cache_is_keyed_by_the_config_content(tmp_path: Path) -> None:
    """Editing the quick config must not reuse a checkpoint trained with the old one."""
    import shutil

    from edge_reid.deploy.default_model import quick_checkpoint_path

    configs = Path(__file__).resolve().parents[1] / "train" / "configs"
    same, edited = shutil.copytree(configs, tmp_path / "same"), shutil.copytree(configs, tmp_path / "edited")
    quick = edited / "visnet_synthetic_quick.yaml"
    quick.write_text(quick.read_text().replace("epochs: 3", "epochs: 4"))
    assert "epochs: 4" in quick.read_text()
    original = quick_checkpoint_path(configs / quick.name)
    assert quick_checkpoint_path(same / quick.name) == original
    assert quick_checkpoint_path(quick) != original
    assert original.name.startswith("visnet_synthetic_quick-")
