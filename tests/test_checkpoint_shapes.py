"""A checkpoint whose keys match the model but whose tensor shapes do not (``num_ids`` edited in its
metadata) is one sentence naming the mismatched tensors in eval, export and stream, not a RuntimeError."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from edge_reid.cli import main
from edge_reid.models import build_model
from edge_reid.models.checkpoint import check_state_matches, save_checkpoint


@pytest.fixture(scope="module")
def mismatched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mobilenetv2 checkpoint trained for 5 ids whose metadata claims 7 (the classifier is 5 x D)."""
    folder = tmp_path_factory.mktemp("ckpt")
    model = build_model("mobilenetv2", num_classes=5, input_size=(64, 32))
    path = save_checkpoint(folder / "m.pth", model, model.meta("synthetic"))
    payload = torch.load(path, weights_only=True)
    payload["meta"]["num_ids"] = 7
    torch.save(payload, path)
    return path


def _one_sentence(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-reid: error: ") and "\n" not in err and "Traceback" not in err, err
    assert "size mismatch" not in err
    return err


@pytest.mark.parametrize("command", ["eval", "export", "stream"])
def test_shape_mismatch_is_one_sentence_naming_the_tensors(
        mismatched: Path, tmp_path: Path, capsys: pytest.CaptureFixture, command: str) -> None:
    argv = {
        "eval": ["eval", "--checkpoint", str(mismatched), "--data-root", str(tmp_path), "--workers", "0"],
        "export": ["export", "--checkpoint", str(mismatched), "--out", str(tmp_path / "m.onnx")],
        "stream": ["stream", "--model", str(mismatched), "--backend", "torch",
                   "--source", f"cam=file:{tmp_path / 'none.mp4'}", "--out", str(tmp_path / "s")],
    }[command]
    assert main(argv) == 2
    err = _one_sentence(capsys)
    assert str(mismatched) in err and "differ in shape" in err
    assert "classifier" in err and "(5, " in err and "(7, " in err  # the tensor, with both shapes
    assert not (tmp_path / "m.onnx").exists()


def test_check_state_matches_names_missing_unexpected_and_shapes() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    state = dict(model.state_dict())
    check_state_matches(model, state, "File f", "the model")  # a match is silent
    state["1.weight"] = torch.zeros(5, 4)
    state.pop("0.bias")
    state["extra"] = torch.zeros(1)
    with pytest.raises(Exception) as info:
        check_state_matches(model, state, "File f", "the model")
    text = str(info.value)
    assert "1.weight is (5, 4) in the file but (2, 4) in the model" in text
    assert "1 missing (0.bias)" in text and "1 unexpected (extra)" in text
