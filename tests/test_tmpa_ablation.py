"""The TMPA ablation script: a finished row is not retrained, the table and JSON come from the row files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("tmpa_ablation", ROOT / "benchmarks/tmpa_ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_done_rows_are_not_retrained_and_the_table_lists_the_rest(tmp_path: Path) -> None:
    script = _script()
    rows = tmp_path / "rows"
    rows.mkdir()
    row = {"row": "agw", "description": "AGW", "rank1": 7.5, "mAP": 12.25, "mINP": 7.0, "train_time_s": 600.0,
           "wall_s": 660.0, "macs": 235_400_000, "input_size": [48, 24], "history": [{"epoch": 1}]}
    (rows / "agw.json").write_text(json.dumps(row))
    assert script.main(["--out", str(tmp_path), "--rows", "agw"]) == 0  # nothing to train: returns at once
    assert not (tmp_path / "runs").exists()
    table = (tmp_path / "table.md").read_text()
    assert "| AGW | 7.50 | 12.25 | 7.00 | 10.0 min | 11.0 min | 235.4 M |" in table and "48x24" in table
    script.write_summary(tmp_path, ["agw", "tmpa"])
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["pending"] == ["tmpa"] and "history" not in result["rows"][0]
    assert "| tmpa | not run |" in (tmp_path / "table.md").read_text()


def test_variants_add_their_overrides() -> None:
    specs = _script().row_specs(["agw"], ["r05=pedmix"], ["r05:data.pedmix.ratios=0.5", "other:x=1"])
    assert specs["r05"]["overrides"] == ["data.pedmix.enabled=true", "data.pedmix.ratios=0.5"]
    assert specs["agw"]["overrides"] == []
