"""Issue 18, build side: a rebuild into an existing --out killed midway leaves the old set intact
and a folder mixing two builds is refused by ``bench --artifacts`` (item 3); a failed build leaves
no empty --out (item 15); --calib-images below 1 is refused and INT8 parity is measured on crops
the calibration did not see, or the build says it could not be (item 12)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edge_reid.cli import main
from edge_reid.errors import InvalidInputError
from edge_reid.models import build_model
from edge_reid.models.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = build_model("mobilenetv2", num_classes=3, input_size=(64, 32)).eval()
    return save_checkpoint(path, model, model.meta("test"))


def _argv(ckpt: Path, out: Path, *extra: str):
    return ["build", "--checkpoint", str(ckpt), "--out", str(out), "--precisions", "fp32,fp16",
            "--eval-dataset", "none", "--latency-iters", "1", "--batch", "1,2,2", "--backend", "onnxruntime", *extra]


def _digest(folder: Path):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # three builds, one killed: ~80 s on a shared 2-core CPU
def test_a_killed_rebuild_leaves_the_old_set_and_a_mixed_folder_is_refused(tmp_path):
    from edge_reid.bench.command import load_manifest

    out = tmp_path / "builds" / "mine"
    assert main(_argv(_checkpoint(tmp_path / "a.pth", 0), out)) == 0
    old = _digest(out)
    old_fp16 = (out / "model_fp16.onnx").read_bytes()

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    newer = _checkpoint(tmp_path / "b.pth", 1)
    build = subprocess.Popen([sys.executable, "-m", "edge_reid.cli", *_argv(newer, out)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, killed = time.time() + 300, False
    while time.time() < deadline and build.poll() is None:
        fresh = [p for p in out.parent.glob("**/model_fp32.onnx")
                 if hashlib.sha256(p.read_bytes()).hexdigest() != old["model_fp32.onnx"]]
        if fresh:  # the new FP32 graph is written, FP16 and the manifest are not yet: kill it here
            build.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    build.wait()
    assert killed, "the rebuild finished before it could be killed: " + build.stderr.read()[-2000:]
    assert _digest(out) == old  # the old complete set, untouched
    load_manifest(out, say=lambda s: None)

    # the next build tidies the killed run's staging folder and swaps its own set in
    assert main(_argv(newer, out)) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["mine"]
    assert _digest(out)["model_fp32.onnx"] != old["model_fp32.onnx"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["out"] == str(out) and all(Path(p).parent == out for p in manifest["artifacts"].values())

    (out / "model_fp16.onnx").write_bytes(old_fp16)  # a file of the other build copied in
    with pytest.raises(InvalidInputError, match="model_fp16.onnx is not the file .* mixes files of different builds"):
        load_manifest(out, say=lambda s: None)


def test_a_failed_build_leaves_no_empty_out(tmp_path, capsys):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    out = tmp_path / "fresh"
    assert main(_argv(broken, out)) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [broken]  # neither --out nor a staging folder


@pytest.mark.parametrize("count", ["0", "-3"])
def test_calib_images_below_one_is_refused(tmp_path, capsys, count):
    ckpt = _checkpoint(tmp_path / "a.pth", 0)
    assert main(_argv(ckpt, tmp_path / "out", "--precisions", "int8", "--calib-random", "--calib-images", count)) == 2
    assert f"--calib-images must be at least 1; got {count}." in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _crops(folder: Path, n: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(n):
        cv2.imwrite(str(folder / f"{k}.png"), rng.integers(0, 255, (64, 32, 3), dtype=np.uint8))
    return folder


@pytest.mark.slow  # two INT8 builds: ~50 s on a shared 2-core CPU
def test_int8_parity_is_measured_on_crops_the_calibration_did_not_see(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "a.pth", 0)
    five = _crops(tmp_path / "five", 5)
    argv = _argv(ckpt, tmp_path / "out", "--precisions", "int8", "--calib-dir", str(five), "--calib-images", "4",
                 "--int8-min-cosine", "0")
    assert main(argv) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["calibration"]["images"] == 4
    assert manifest["parity_images"] == {"source": f"1 crops from folder {five} held out of calibration", "count": 1,
                                         "unseen_by_calibration": True}
    capsys.readouterr()

    one = _crops(tmp_path / "one", 1)
    argv = _argv(ckpt, tmp_path / "out1", "--precisions", "int8", "--calib-dir", str(one), "--calib-images", "1",
                 "--int8-min-cosine", "0")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "INT8 parity is measured on images the calibration saw" in printed
    assert json.loads((tmp_path / "out1" / "manifest.json").read_text())["parity_images"]["unseen_by_calibration"] is False
