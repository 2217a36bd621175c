"""Training never ends silently wrong: non-finite or diverging runs stop with a clear error and
never leave non-finite weights in a checkpoint; a rejected --resume writes nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

from edge_reid.cli import main
from edge_reid.data.synthetic.dataset import generate_dataset
from edge_reid.engine import train
from edge_reid.errors import EdgeReidError


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "synthetic8"
    generate_dataset(root, num_ids=8, num_cams=2, images_per_id_per_cam=3, num_distractors=0, num_junk=0)
    return root


@pytest.fixture(scope="module")
def other_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same layout with a different number of training identities."""
    root = tmp_path_factory.mktemp("other") / "synthetic12"
    generate_dataset(root, num_ids=12, num_cams=2, images_per_id_per_cam=3, num_distractors=0, num_junk=0)
    return root


def config(root: Path, out: Path, optim: Dict[str, Any], **train_cfg: Any) -> Dict[str, Any]:
    return {
        "name": "guard",
        "model": {"name": "mobilenetv2"},
        "data": {"dataset": "market1501", "root": str(root), "input_size": [64, 32], "p": 2, "k": 2, "workers": 0},
        "loss": {"terms": [{"name": "cross_entropy", "label_smoothing": 0.0}]},
        "optim": optim,
        "train": {"epochs": 2, "iters_per_epoch": 2, "threads": 1, "checkpoint_iters": 1, "log_every": 1,
                  **train_cfg},
        "eval": {"enabled": False},
        "output": {"dir": str(out), "tensorboard": False},
    }


def _finite_checkpoint(path: Path) -> bool:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    return all(torch.isfinite(t).all() for t in payload["model"].values() if t.is_floating_point())


def test_sgd_at_huge_lr_stops_and_never_checkpoints_non_finite_weights(tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "sgd"
    cfg = config(tiny_root, out, {"name": "sgd", "lr": 1e12, "momentum": 0.9}, max_nonfinite=3, epochs=4)
    with pytest.raises(EdgeReidError, match="Training stopped"):
        train(cfg, verbose=False)
    for name in ("last.pth", "best.pth"):
        if (out / name).exists():
            assert _finite_checkpoint(out / name), f"{name} holds NaN or infinite weights"


def test_adam_at_huge_lr_is_not_a_silent_success(tiny_root: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "adam"
    cfg = config(tiny_root, out, {"name": "adam", "lr": 1e6}, max_nonfinite=3, epochs=3)
    import yaml

    path = tmp_path / "adam.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "edge-reid: error: Training stopped" in err and "Traceback" not in err
    assert "diverged" in err or "NaN or infinite" in err
    if (out / "last.pth").exists():
        assert _finite_checkpoint(out / "last.pth")


def test_a_checkpoint_is_refused_from_non_finite_weights(tiny_root: Path, tmp_path: Path) -> None:
    from edge_reid.data import build_dataset
    from edge_reid.data.loader import build_train_loader
    from edge_reid.engine.config import load_config
    from edge_reid.engine.hooks import CheckpointHook, default_hooks
    from edge_reid.engine.optim import build_optimizer
    from edge_reid.engine.trainer import Trainer
    from edge_reid.losses import LossComposer
    from edge_reid.models import build_model

    out = tmp_path / "ok"
    cfg = load_config(config(tiny_root, out, {"name": "adam", "lr": 3.5e-4}, epochs=1))
    dataset = build_dataset("market1501", str(tiny_root), verbose=False)
    loader = build_train_loader(dataset, (64, 32), p=2, k=2, seed=0, workers=0)
    model = build_model("mobilenetv2", dataset.num_train_pids, input_size=(64, 32))
    trainer = Trainer(model, build_optimizer(model, cfg["optim"]), LossComposer.from_config(cfg["loss"]), loader,
                      cfg, out, model.meta("tiny"), torch.device("cpu"), hooks=default_hooks(None, cfg["train"]))
    trainer.train()
    before = (out / "last.pth").read_bytes()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(EdgeReidError, match="Refusing to write .*last.pth.*NaN or infinite"):
        CheckpointHook(1)._save(trainer, "last.pth")
    assert (out / "last.pth").read_bytes() == before and _finite_checkpoint(out / "last.pth")


@pytest.mark.parametrize("change", ["model", "ids"])
def test_rejected_resume_leaves_the_run_folder_untouched(
        tiny_root: Path, other_root: Path, tmp_path: Path, change: str) -> None:
    out = tmp_path / "run"
    train(config(tiny_root, out, {"name": "adam", "lr": 3.5e-4}, epochs=1), verbose=False)
    before = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}
    other = config(other_root if change == "ids" else tiny_root, out, {"name": "adam", "lr": 3.5e-4}, epochs=2)
    if change == "model":
        other["model"]["name"] = "dcs_mobilenetv2"
    with pytest.raises(EdgeReidError, match="last.pth"):
        train(other, resume=out, verbose=False)
    after = {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}
    assert after.keys() == before.keys()
    assert after["config.yaml"] == before["config.yaml"], "the rejected resume overwrote config.yaml"
    assert after == before
    assert sorted(os.listdir(out)) == sorted(before)


def test_stale_temporaries_of_a_killed_run_are_removed_on_resume(tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(config(tiny_root, out, {"name": "adam", "lr": 3.5e-4}, epochs=1), verbose=False)
    # what a kill during torch.save / a log rewrite leaves behind (atomic_write's temporary names)
    stale = [out / ".last.pth.k3x9_q.tmp", out / ".best.pth.a1b2c3.tmp", out / ".log.jsonl.zz.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    keep = out / ".notes.txt.tmp"  # not one of the engine's files: left alone
    keep.write_bytes(b"mine")
    train(None, overrides=["train.epochs=2"], resume=out, verbose=False)
    assert not any(p.exists() for p in stale)
    assert keep.read_bytes() == b"mine"
    assert torch.load(out / "last.pth", weights_only=True)["epoch"] == 2


def test_iters_per_epoch_beyond_one_sampler_pass_is_refused(tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "capped"
    with pytest.raises(EdgeReidError, match=r"'train.iters_per_epoch' is 1000 .* at most \d+"):
        train(config(tiny_root, out, {"name": "adam", "lr": 3.5e-4}, iters_per_epoch=1000), verbose=False)
    assert not out.exists()
