"""Training configs: _base_ inheritance, typed overrides, errors that name the key, saved config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
import torch

from edge_reid.cli import main
from edge_reid.engine.checkpointing import resolve_resume_path
from edge_reid.engine.config import load_config, save_config
from edge_reid.errors import EdgeReidError, InvalidInputError

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_base_inheritance_merges_sections_and_child_wins(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", {"model": {"name": "resnet50", "options": {"last_stride": 1}},
                                    "train": {"epochs": 7, "seed": 3}})
    _write(tmp_path / "child.yaml", {"_base_": "base.yaml", "train": {"epochs": 2}})
    cfg = load_config(tmp_path / "child.yaml")
    assert cfg["train"]["epochs"] == 2  # child overrides
    assert cfg["train"]["seed"] == 3  # base kept
    assert cfg["model"]["options"] == {"last_stride": 1}
    assert cfg["optim"]["name"] == "adam"  # schema default
    assert cfg["name"] == "child"


def test_overrides_are_yaml_typed(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", {})
    cfg = load_config(path, ["train.epochs=5", "optim.lr=1e-3", "data.input_size=[64, 32]",
                             "train.grad_clip=null", "model.options.last_stride=1", "optim.name=sgd"])
    assert cfg["train"]["epochs"] == 5 and isinstance(cfg["train"]["epochs"], int)
    assert cfg["optim"]["lr"] == pytest.approx(1e-3)
    assert cfg["data"]["input_size"] == [64, 32]
    assert cfg["train"]["grad_clip"] is None
    assert cfg["model"]["options"]["last_stride"] == 1
    assert cfg["optim"]["name"] == "sgd"


@pytest.mark.parametrize("override, key", [
    ("train.epoch=3", "train.epoch"),
    ("trainer.epochs=3", "trainer"),
    ("data.input_size.h=3", "data.input_size"),
])
def test_unknown_override_key_is_named(tmp_path: Path, override: str, key: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        load_config(_write(tmp_path / "c.yaml", {}), [override])
    assert f"'{key}'" in str(info.value)


@pytest.mark.parametrize("data, key", [
    ({"train": {"epochs": "many"}}, "train.epochs"),
    ({"train": {"epochs": 2.5}}, "train.epochs"),
    ({"train": {"amp": "fp8"}}, "train.amp"),
    ({"optim": {"lr": "fast"}}, "optim.lr"),
    ({"data": {"input_size": [64]}}, "data.input_size"),
    ({"train": {"seed": True}}, "train.seed"),
    ({"train": {"epochs": 0}}, "train.epochs"),
    ({"model": "resnet50"}, "model"),
    ({"optimizer": {"lr": 1.0}}, "optimizer"),
    ({"data": {"p_size": 4}}, "data.p_size"),
])
def test_bad_values_in_file_name_the_key(tmp_path: Path, data: dict, key: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        load_config(_write(tmp_path / "c.yaml", data))
    message = str(info.value)
    assert f"'{key}'" in message
    assert message.endswith(".") and "\n" not in message


def test_missing_file_bad_yaml_and_base_cycle(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="nope.yaml"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("train: {epochs: [1,\n")
    with pytest.raises(InvalidInputError, match="bad.yaml"):
        load_config(tmp_path / "bad.yaml")
    _write(tmp_path / "a.yaml", {"_base_": "b.yaml"})
    _write(tmp_path / "b.yaml", {"_base_": "a.yaml"})
    with pytest.raises(InvalidInputError, match="inherits from itself"):
        load_config(tmp_path / "a.yaml")
    _write(tmp_path / "orphan.yaml", {"_base_": "missing_base.yaml"})
    with pytest.raises(InvalidInputError, match="missing_base.yaml"):
        load_config(tmp_path / "orphan.yaml")


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(CONFIGS / "visnet_synthetic.yaml", ["train.epochs=3"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(tmp_path / "run" / "config.yaml")
    assert again == cfg
    assert not list((tmp_path / "run").glob(".*tmp"))  # atomic write left no temporary


def test_shipped_configs_load_and_match_the_papers() -> None:
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    for name in names:
        load_config(CONFIGS / name)
    vis = load_config(CONFIGS / "visnet_market.yaml")
    assert (vis["data"]["p"], vis["data"]["k"], vis["data"]["input_size"]) == (16, 6, [256, 128])
    assert vis["optim"]["lr"] == pytest.approx(3.5e-4) and vis["optim"]["weight_decay"] == pytest.approx(5e-4)
    assert vis["schedule"]["milestones"] == [40, 80] and vis["train"]["epochs"] == 120
    assert vis["train"]["grad_clip"] == 1.0
    assert [t["name"] for t in vis["loss"]["terms"]] == ["cross_entropy", "fidi", "semantic"]
    assert vis["loss"]["weighting"] == {"type": "dwa", "window": 50, "temperature": 2.0}
    bot = load_config(CONFIGS / "bot_resnet50_market.yaml")
    assert bot["schedule"]["warmup_epochs"] == 10 and bot["schedule"]["milestones"] == [40, 70]
    assert {"name": "triplet", "margin": 0.3} in bot["loss"]["terms"]
    dcs = load_config(CONFIGS / "dcs_mobilenetv2_market.yaml")
    assert dcs["optim"]["name"] == "sgd" and dcs["optim"]["momentum"] == 0.9
    quick = load_config(CONFIGS / "visnet_synthetic_quick.yaml")
    assert quick["model"]["name"] == "visnet" and quick["data"]["dataset"] == "synthetic"
    assert "visnet_synthetic_quick.yaml" in names and "_base_.yaml" in names


def test_cli_prints_one_sentence_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _write(tmp_path / "c.yaml", {"train": {"epochs": "x"}})
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-reid: error:") and "'train.epochs'" in err and "Traceback" not in err
    assert main(["train", "--config", str(path.with_name("absent.yaml"))]) == 2
    assert "absent.yaml" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "c.yaml"), "--set", "train.nope=1"]) == 2
    assert "'train.nope'" in capsys.readouterr().err


@pytest.mark.parametrize("override, phrase", [
    ("optim.lr=nan", "finite"), ("optim.lr=.inf", "finite"), ("optim.lr=-.inf", "finite"),
    ("optim.lr=0", "positive"), ("optim.lr=-1e-3", "positive"), ("train.grad_clip=nan", "finite"),
    ("optim.weight_decay=-1", "negative"),
])
def test_non_finite_or_non_positive_numbers_are_refused_at_config_time(
        tmp_path: Path, capsys: pytest.CaptureFixture, override: str, phrase: str) -> None:
    path = _write(tmp_path / "c.yaml", {"train": {"epochs": 1}})
    key = override.split("=")[0]
    with pytest.raises(InvalidInputError, match=phrase):
        load_config(path, [override])
    assert main(["train", "--config", str(path), "--set", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("edge-reid: error:") and f"'{key}'" in err and len(err.splitlines()) == 1


def test_non_utf8_config_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\ntrain:\n  epochs: 1\n".encode("latin-1"))
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not UTF-8" in err and str(path) in err and len(err.splitlines()) == 1


def test_duplicate_yaml_keys_are_refused_naming_the_key_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("train:\n  epochs: 3\n  seed: 1\n  epochs: 5\n")
    with pytest.raises(InvalidInputError, match=r"'epochs' is given twice \(lines 2 and 4\)"):
        load_config(path)
    path.write_text("train:\n  epochs: 3\ntrain:\n  seed: 1\n")  # a whole section twice
    with pytest.raises(InvalidInputError, match="'train' is given twice"):
        load_config(path)


def test_resume_of_a_corrupt_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "last.pth"
    bad.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "corrupt or truncated" in err and str(bad) in err
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(EdgeReidError, match="holds no last.pth"):
        resolve_resume_path(tmp_path / "empty_run")


def test_every_shipped_training_config_builds_its_losses_and_model() -> None:
    """Configs are checked by the schema, but loss terms and model options only when built:
    build both for every runnable config so a broken shipped config fails here, not in a run."""
    from edge_reid.engine.builders import build_composer
    from edge_reid.models import build_model

    runnable = sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith("_"))
    assert runnable
    for path in runnable:
        cfg = load_config(path)
        build_composer(cfg)
        options = dict(cfg["model"]["options"], input_size=tuple(cfg["data"]["input_size"]))
        with torch.device("meta"):
            build_model(cfg["model"]["name"], num_classes=10, **options)
