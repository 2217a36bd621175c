"""The shared foundations: registry, atomic writes, metadata, CLI errors, checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from edge_reid.cli import main
from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.models import build_model
from edge_reid.models.checkpoint import load_model_from_checkpoint, read_checkpoint, save_checkpoint
from edge_reid.registry import Registry
from edge_reid.utils.atomic import atomic_path, atomic_write, atomic_write_json


def test_registry_lookup_and_unknown_name_lists_known() -> None:
    reg: Registry = Registry("widget")
    reg.register("b")(int)
    reg.register("a")(float)
    assert reg.get("a") is float and reg.names() == ["a", "b"] and "b" in reg
    with pytest.raises(EdgeReidError, match="Unknown widget 'c'; known widgets: a, b"):
        reg.get("c")
    with pytest.raises(ValueError):
        reg.register("a")(str)


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write(b"new-partial")
            raise RuntimeError("writer died")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary left behind
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # not visible until the block ends
    assert target.read_bytes() == b"new"


def test_metadata_round_trip_and_errors() -> None:
    meta = ModelMeta(model="resnet50", input_size=(256, 128), embedding_dim=2048, num_ids=751, dataset="market1501")
    back = ModelMeta.from_json(meta.to_json())
    assert back == meta
    with pytest.raises(InvalidInputError, match="lacks the model metadata keys \\['embedding_dim'"):
        ModelMeta.from_dict({"model": "x", "input_size": [1, 1], "num_ids": 1})
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        ModelMeta.from_json("{nope")


def test_checkpoint_round_trip_and_corruption(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=5, input_size=(64, 32)).eval()
    path = save_checkpoint(tmp_path / "m.pth", model, model.meta("synthetic"), extra={"epoch": 3})
    loaded, meta, payload = load_model_from_checkpoint(path)
    assert meta.model == "resnet50" and meta.input_size == (64, 32) and meta.num_ids == 5
    assert payload["epoch"] == 3
    x = torch.rand(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    truncated = tmp_path / "t.pth"
    truncated.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(InvalidInputError, match="corrupt or truncated"):
        read_checkpoint(truncated)
    foreign = tmp_path / "f.pth"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(InvalidInputError, match="not an edge-reid checkpoint"):
        read_checkpoint(foreign)


def test_model_contract_train_dict_eval_normalised() -> None:
    model = build_model("resnet50", num_classes=7, input_size=(64, 32))
    x = torch.rand(3, 3, 64, 32)
    out = model.train()(x)
    assert out["logits"].shape == (3, 7) and out["features"].shape == (3, 2048)
    emb = model.eval()(x)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)


def test_cli_unknown_command_and_user_error_exit_codes(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


def test_console_script_prints_help() -> None:
    result = subprocess.run([sys.executable, "-m", "edge_reid.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "synth" in result.stdout and "eval" in result.stdout


def test_metadata_json_is_plain(tmp_path: Path) -> None:
    meta = ModelMeta(model="m", input_size=(8, 4), embedding_dim=3, num_ids=2)
    atomic_write_json(tmp_path / "meta.json", meta.to_dict())
    assert json.loads((tmp_path / "meta.json").read_text())["input_size"] == [8, 4]


def test_atomic_files_get_normal_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.txt", "w") as handle:
            handle.write("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
