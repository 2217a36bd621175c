"""Benchmark output: Markdown tables, CSV and JSON files (atomic), and the accuracy-vs-latency plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from edge_reid.utils.atomic import atomic_path, atomic_write_csv, atomic_write_json

PathLike = Union[str, Path]

#: Plot size in inches and resolution: 1000 x 650 pixels.
PLOT_SIZE = (10.0, 6.5)
PLOT_DPI = 100


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: None -> '-', floats with ``digits`` significant decimals, bools as yes/no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 10:
            return f"{value:.2f}"
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str],
                   headers: Optional[Mapping[str, str]] = None) -> str:
    """A Markdown (pipe) table of ``rows`` restricted to ``columns``, padded for the terminal."""
    names = [(headers or {}).get(c, c) for c in columns]
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(n)] + [len(row[i]) for row in cells]) for i, n in enumerate(names)]
    right = [any(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return "\n".join([line(names), rule] + [line(row) for row in cells])


def write_csv(path: PathLike, rows: Sequence[Mapping[str, Any]], columns: Optional[Sequence[str]] = None) -> Path:
    """Write ``rows`` as CSV (columns: given, else the union of keys in first-seen order), atomically."""
    return atomic_write_csv(path, rows, columns)


def write_json(path: PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    atomic_write_json(path, payload)
    return Path(path)


def plot_accuracy_vs_latency(path: PathLike, rows: Sequence[Mapping[str, Any]], device: str, batch: int,
                             x: str = "ms_per_image", y: str = "mAP") -> Path:
    """Scatter ``y`` (%) against ``x`` (ms per image) per model x backend x precision, Pareto front joined.

    Marker shape = backend, colour = precision, annotation = model. Rows need a ``pareto`` flag
    (:func:`edge_reid.bench.pareto.mark_front`); rows without ``y`` are left out. PNG, atomic.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [r for r in rows if r.get(y) is not None and r.get(x) is not None]
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    colours = plt.get_cmap("tab10").colors
    backends = sorted({r["backend"] for r in points})
    precisions = sorted({r["precision"] for r in points})
    fig, ax = plt.subplots(figsize=PLOT_SIZE, dpi=PLOT_DPI)
    try:
        for r in points:
            ax.scatter(r[x], r[y], s=70, marker=markers[backends.index(r["backend"]) % len(markers)],
                       color=colours[precisions.index(r["precision"]) % len(colours)],
                       edgecolors="black" if r.get("pareto") else "none", linewidths=1.2, zorder=3)
            ax.annotate(r["model"], (r[x], r[y]), textcoords="offset points", xytext=(5, 4), fontsize=7)
        front = sorted((r for r in points if r.get("pareto")), key=lambda r: (r[x], -r[y]))
        if front:
            ax.plot([r[x] for r in front], [r[y] for r in front], "--", color="black", linewidth=1, zorder=2,
                    label="Pareto front")
        for i, b in enumerate(backends):
            ax.scatter([], [], marker=markers[i % len(markers)], color="grey", label=f"backend: {b}")
        for i, p in enumerate(precisions):
            ax.scatter([], [], marker="o", color=colours[i % len(colours)], label=f"precision: {p}")
        ax.set_xlabel(f"latency (ms per image, p50 at batch {batch})")
        ax.set_ylabel(f"{y} (%)")
        if points:
            _sensible_axes(ax, [r[x] for r in points], [r[y] for r in points])
        ax.set_title(f"Accuracy vs latency on {device}")
        ax.grid(True, alpha=0.3)
        if points:
            ax.legend(loc="best", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no point has an accuracy measurement", transform=ax.transAxes, ha="center")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=PLOT_DPI)
    finally:
        plt.close(fig)
    return Path(path)


def _sensible_axes(ax: Any, xs: Sequence[float], ys: Sequence[float]) -> None:
    """Accuracy from 0 (to the next 10 above the best, at most 100), so that a 0.04-point spread
    looks like one; latency on a log scale when the points span more than 5x."""
    top = min(100.0, 10.0 * (int(max(ys) // 10) + 1))
    ax.set_ylim(0.0, max(top, 10.0))
    if min(xs) > 0 and max(xs) / min(xs) > 5:
        ax.set_xscale("log")


def dump_rows(rows: List[Dict[str, Any]], out_dir: PathLike, stem: str, columns: Sequence[str],
              extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Path]:
    """Write ``<stem>.csv`` (all keys) and ``<stem>.json`` (rows + ``extra``) under ``out_dir``."""
    out = Path(out_dir)
    csv_path = write_csv(out / f"{stem}.csv", rows)
    json_path = write_json(out / f"{stem}.json", {**(extra or {}), "columns": list(columns), "rows": rows})
    return {"csv": csv_path, "json": json_path}
