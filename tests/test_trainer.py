"""The Trainer on a tiny real run: logs, checkpoints, LR schedule, non-finite loss handling."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

from edge_reid.data import build_dataset
from edge_reid.data.loader import build_train_loader
from edge_reid.data.synthetic.dataset import generate_dataset
from edge_reid.data.transforms import build_train_transform
from edge_reid.engine import train
from edge_reid.engine.config import load_config
from edge_reid.engine.hooks import default_hooks
from edge_reid.engine.optim import EpochSchedule, build_optimizer
from edge_reid.engine.trainer import NonFiniteLossError, Trainer
from edge_reid.losses import LossComposer
from edge_reid.models import build_model
from edge_reid.models.checkpoint import load_model_from_checkpoint


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-identity synthetic set in the Market-1501 layout (seconds to render)."""
    root = tmp_path_factory.mktemp("tiny") / "synthetic16"
    generate_dataset(root, num_ids=16, num_cams=3, images_per_id_per_cam=3, num_distractors=0, num_junk=0)
    return root


def tiny_config(root: Path, out: Path, **train: Any) -> Dict[str, Any]:
    return {
        "name": "tiny",
        "model": {"name": "mobilenetv2"},
        "data": {"dataset": "market1501", "root": str(root), "input_size": [64, 32], "p": 4, "k": 4, "workers": 0},
        "loss": {"terms": [{"name": "cross_entropy", "label_smoothing": 0.1}, {"name": "triplet", "margin": 0.3}]},
        "optim": {"name": "adam", "lr": 3.5e-4},
        "train": {"epochs": 2, "iters_per_epoch": 3, "threads": 1, "checkpoint_iters": 2, "log_every": 1, **train},
        "eval": {"enabled": False},
        "output": {"dir": str(out), "tensorboard": False},
    }


def test_run_writes_logs_config_and_a_resumable_checkpoint(tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = train(tiny_config(tiny_root, out), overrides=["train.grad_clip=1.0"], verbose=False)
    assert result.run_dir == out and result.checkpoint == out / "last.pth"

    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert math.isfinite(row["loss"]) and row["loss"] > 0
        assert {"loss.cross_entropy", "loss.triplet", "weight.cross_entropy", "lr", "images_per_s"} <= set(row)
        assert row["images_per_s"] > 0 and row["lr"] == pytest.approx(3.5e-4)
    with open(out / "log.csv") as handle:
        csv_rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in csv_rows] == [1, 2] and "loss.triplet" in csv_rows[0]

    saved = load_config(out / "config.yaml")
    assert saved["train"]["grad_clip"] == 1.0 and saved["data"]["root"] == str(tiny_root)

    payload = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert (payload["epoch"], payload["batch"], payload["global_step"]) == (2, 0, 6)
    assert {"optimizer", "composer", "rng", "config", "history", "scheduler"} <= set(payload)
    assert payload["config"]["train"]["grad_clip"] == 1.0

    model, meta, _ = load_model_from_checkpoint(out / "last.pth")
    assert meta.model == "mobilenetv2" and tuple(meta.input_size) == (64, 32) and meta.num_ids == 8
    trained = result.model.state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())
    torch.manual_seed(0)
    fresh = build_model("mobilenetv2", 8, input_size=(64, 32)).state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in fresh.items() if v.is_floating_point())


def test_lr_schedule_warmup_step_and_cosine() -> None:
    step = EpochSchedule({"type": "step", "warmup_epochs": 10, "warmup_factor": 0.1, "milestones": [40, 70],
                          "gamma": 0.1, "min_lr_factor": 0.0}, epochs=120)
    assert step.factor(0) == pytest.approx(0.1)
    assert step.factor(5) == pytest.approx(0.55)
    assert step.factor(10) == pytest.approx(1.0) and step.factor(39) == pytest.approx(1.0)
    assert step.factor(40) == pytest.approx(0.1) and step.factor(70) == pytest.approx(0.01)
    cos = EpochSchedule({"type": "cosine", "warmup_epochs": 0, "warmup_factor": 0.1, "milestones": [],
                         "gamma": 0.1, "min_lr_factor": 0.0}, epochs=10)
    factors = [cos.factor(e) for e in range(10)]
    assert factors[0] == pytest.approx(1.0) and factors[5] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(factors, factors[1:]))


class NanForCalls:
    """The real train transform, except that calls in ``[start, stop)`` return an all-NaN image."""

    def __init__(self, start: int, stop: int) -> None:
        self.inner = build_train_transform((64, 32))
        self.start, self.stop, self.calls = start, stop, 0

    def __call__(self, image: Any) -> torch.Tensor:
        out = self.inner(image)
        self.calls += 1
        if self.start < self.calls <= self.stop:
            out = torch.full_like(out, float("nan"))
        return out


def _trainer(root: Path, out: Path, transform: NanForCalls, max_nonfinite: int) -> Trainer:
    cfg = load_config(tiny_config(root, out, max_nonfinite=max_nonfinite, checkpoint_iters=0, iters_per_epoch=3,
                                  epochs=1))
    torch.set_num_threads(1)
    dataset = build_dataset("market1501", str(root), verbose=False)
    loader = build_train_loader(dataset, (64, 32), p=4, k=4, seed=0, workers=0, transform=transform)
    torch.manual_seed(0)
    model = build_model("mobilenetv2", dataset.num_train_pids, input_size=(64, 32))
    composer = LossComposer.from_config(cfg["loss"])
    return Trainer(model, build_optimizer(model, cfg["optim"]), composer, loader, cfg, out, model.meta("tiny"),
                   torch.device("cpu"), hooks=default_hooks(None, cfg["train"]))


def test_nonfinite_batch_is_skipped_without_touching_the_model(tiny_root: Path, tmp_path: Path) -> None:
    # batch 2 (images 17..32) is NaN: that step is skipped, training goes on
    trainer = _trainer(tiny_root, tmp_path / "skip", NanForCalls(16, 32), max_nonfinite=3)
    state = trainer.train()
    assert state.nonfinite_total == 1 and state.epoch == 1
    for name, tensor in trainer.module.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), f"{name} was corrupted by the skipped NaN batch"
    row = json.loads((tmp_path / "skip" / "log.jsonl").read_text().splitlines()[-1])
    assert row["skipped_steps"] == 1 and math.isfinite(row["loss"])


def test_nonfinite_losses_in_a_row_stop_training(tiny_root: Path, tmp_path: Path) -> None:
    trainer = _trainer(tiny_root, tmp_path / "stop", NanForCalls(0, 10**6), max_nonfinite=2)
    with pytest.raises(NonFiniteLossError, match="2 steps in a row.*train.max_nonfinite"):
        trainer.train()
    assert trainer.state.nonfinite_total == 2 and trainer.state.nonfinite_streak == 2


def test_ibb_starts_from_an_initial_pass_and_logs_its_table_v_columns(tiny_root: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_root, tmp_path / "run", loss_init_batches=2)
    cfg["model"] = {"name": "dcs_mobilenetv2"}
    cfg["loss"]["terms"].append({"name": "ibb", "weight": 0.01})
    result = train(cfg, verbose=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    init = rows[0]
    assert init["ibb.init.samples"] == 2 * 16 and init["ibb.init.beta_f"] > 1.0
    assert 0.4 < init["ibb.init.entropy_f"] < 0.6
    for row in rows[1:]:
        assert {"stats.ibb.ibb", "stats.ibb.ib_loss", "stats.ibb.entropy_f", "stats.ibb.i_fy"} <= set(row)
        assert math.isfinite(row["stats.ibb.ibb"])
    assert result.model.meta().model_options["form"] == "linear"
