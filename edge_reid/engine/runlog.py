"""Per-epoch training logs in the run folder: ``log.jsonl``, ``log.csv`` and TensorBoard (optional).

Both files are rewritten atomically from the full history after every epoch, so a killed
run never leaves half a line, and a resumed run continues the same files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from edge_reid.utils.atomic import atomic_write_text

Row = Dict[str, Any]


def _column_order(rows: Sequence[Mapping[str, Any]]) -> List[str]:
    first = ["epoch", "lr", "loss"]
    seen: List[str] = []
    for row in rows:
        for key in row:
            if key not in seen:
                seen.append(key)
    return [k for k in first if k in seen] + [k for k in seen if k not in first]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class RunLog:
    """Writes the epoch history of a run; only the main process writes anything."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.rows: List[Row] = []
        self._tb: Any = None
        self._tensorboard = enabled and tensorboard  # opened at the first row: nothing is written before

    def restore(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Continue the history of a resumed run (rows from its checkpoint)."""
        self.rows = [dict(r) for r in rows]

    def add(self, row: Mapping[str, Any]) -> None:
        """Record one epoch and rewrite the log files."""
        row = {k: _clean(v) for k, v in row.items()}
        self.rows = [r for r in self.rows if r.get("epoch") != row.get("epoch")] + [row]
        if not self.enabled:
            return
        self.write()
        if self._tensorboard and self._tb is None:
            self._tb = _open_tensorboard(self.run_dir / "tensorboard")
            self._tensorboard = self._tb is not None
        if self._tb is not None:
            step = int(row.get("epoch", len(self.rows)))
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "epoch":
                    self._tb.add_scalar(key.replace(".", "/"), value, step)
            self._tb.flush()

    def write(self) -> None:
        lines = "".join(json.dumps(r, sort_keys=False) + "\n" for r in self.rows)
        atomic_write_text(self.run_dir / "log.jsonl", lines)
        columns = _column_order(self.rows)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({k: _format(row.get(k, "")) for k in columns})
        atomic_write_text(self.run_dir / "log.csv", buffer.getvalue())

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _open_tensorboard(path: Path) -> Optional[Any]:
    """A SummaryWriter when ``tensorboard`` is installed, else None (it is optional)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
    except Exception:
        return None
    return SummaryWriter(log_dir=str(path))


def metrics_table(metrics: Mapping[str, float], title: str = "metrics") -> str:
    """A small two-column text table of metrics (percentages)."""
    width = max([len(k) for k in metrics] + [len(title)])
    lines = [f"{title:<{width}}  value", "-" * (width + 9)]
    for key, value in metrics.items():
        lines.append(f"{key:<{width}}  {value:6.2f}")
    return "\n".join(lines)
