"""Kill a training process mid-epoch (SIGKILL), resume it, and get bit-for-bit the weights of an
uninterrupted run with the same seed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest
import torch
import yaml

from edge_reid.data.synthetic.dataset import generate_dataset
from edge_reid.engine import train

REPO = Path(__file__).resolve().parents[1]


def _config(root: Path) -> Dict[str, Any]:
    return {
        "name": "resume",
        "model": {"name": "mobilenetv2"},
        "data": {"dataset": "market1501", "root": str(root), "input_size": [64, 32], "p": 4, "k": 4, "workers": 1},
        "loss": {"terms": [{"name": "cross_entropy", "label_smoothing": 0.1}, {"name": "triplet", "margin": 0.3}],
                 "weighting": {"type": "dwa", "window": 2, "temperature": 2.0}},
        "optim": {"name": "adam", "lr": 3.5e-4},
        "schedule": {"type": "step", "warmup_epochs": 1, "milestones": [1]},
        "train": {"epochs": 2, "iters_per_epoch": 6, "seed": 7, "threads": 1, "checkpoint_iters": 2,
                  "grad_clip": 1.0},
        "eval": {"enabled": False},
        "output": {"tensorboard": False},
    }


def _read(path: Path) -> Dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow  # about 90 s on a shared 2-core CPU (three training processes)
def test_sigkill_mid_epoch_then_resume_is_bit_exact(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate_dataset(root, num_ids=32, num_cams=3, images_per_id_per_cam=3, num_distractors=0, num_junk=0)
    cfg_path = tmp_path / "resume.yaml"
    cfg_path.write_text(yaml.safe_dump(_config(root)))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # the run that gets killed: wait for a mid-epoch checkpoint, then SIGKILL
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train" / "train.py"), "--config", str(cfg_path), "--quiet",
         "--set", f"output.dir={killed}"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            last = killed / "last.pth"
            if last.is_file() and _read(last)["batch"] > 0:
                proc.send_signal(signal.SIGKILL)
                break
            if proc.poll() is not None:
                pytest.fail(f"training ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.05)
        else:
            pytest.fail("no mid-epoch checkpoint appeared within 240 s")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    at_kill = _read(killed / "last.pth")
    assert at_kill["batch"] > 0 and at_kill["epoch"] < 2, "the checkpoint resumed from must be mid-epoch"

    # resume in a fresh process, from the run folder alone (config comes from the checkpoint)
    done = subprocess.run([sys.executable, str(REPO / "train" / "train.py"), "--resume", str(killed), "--quiet"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    # the uninterrupted reference run, same seed
    reference = tmp_path / "reference"
    train(cfg_path, [f"output.dir={reference}"], verbose=False)

    resumed, ref = _read(killed / "last.pth"), _read(reference / "last.pth")
    assert (resumed["epoch"], resumed["global_step"]) == (ref["epoch"], ref["global_step"]) == (2, 12)
    for name, tensor in ref["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), f"{name} differs after resume"
    for pid, state in ref["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg"], resumed["optimizer"]["state"][pid]["exp_avg"])
    assert ref["composer"]["dwa"] == resumed["composer"]["dwa"]
    # both runs logged the same epochs; losses identical (time columns of course differ)
    assert [r["loss"] for r in resumed["history"]] == [r["loss"] for r in ref["history"]]
