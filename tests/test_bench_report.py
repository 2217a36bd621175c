"""Benchmark output: tables, CSV/JSON files and the accuracy-vs-latency PNG."""

from __future__ import annotations

import csv
import json
import struct

from edge_reid.bench.pareto import mark_front
from edge_reid.bench.report import (PLOT_DPI, PLOT_SIZE, dump_rows, markdown_table, plot_accuracy_vs_latency,
                                    write_csv)


def _png_size(path):
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_markdown_table_has_header_rule_and_aligned_rows() -> None:
    rows = [{"model": "visnet", "p50_ms": 12.3456, "pareto": True}, {"model": "mobilenetv2", "p50_ms": None}]
    lines = markdown_table(rows, ["model", "p50_ms", "pareto"], {"p50_ms": "p50 (ms)"}).splitlines()
    assert lines[0].split("|")[1:4] == [" model       ", " p50 (ms) ", " pareto "]
    assert lines[1].startswith("|---") and lines[1].count("|") == 4 and ":|" in lines[1]
    assert "12.35" in lines[2] and "yes" in lines[2] and lines[3].count(" - ") == 2
    assert len({len(line) for line in lines}) == 1


def test_csv_and_json_round_trip(tmp_path) -> None:
    rows = [{"a": 1, "b": 2.5}, {"a": 2, "c": "x", "b": None}]
    written = dump_rows(rows, tmp_path, "t", ["a", "b"], {"device": "cpu"})
    with open(written["csv"], newline="") as handle:
        read = list(csv.DictReader(handle))
    assert [list(r) for r in read] == [["a", "b", "c"]] * 2
    assert read[1] == {"a": "2", "b": "", "c": "x"}
    payload = json.loads(written["json"].read_text())
    assert payload["rows"] == rows and payload["device"] == "cpu" and payload["columns"] == ["a", "b"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    write_csv(tmp_path / "t.csv", rows[:1])  # overwrite in place
    assert (tmp_path / "t.csv").read_text().splitlines() == ["a,b", "1,2.5"]


def test_plot_is_a_readable_png_of_the_right_size(tmp_path) -> None:
    import matplotlib.image

    rows = [
        {"model": "visnet", "backend": "torch-eager", "precision": "fp32", "ms_per_image": 40.0, "mAP": 75.0},
        {"model": "visnet", "backend": "onnxruntime", "precision": "fp32", "ms_per_image": 20.0, "mAP": 75.0},
        {"model": "visnet", "backend": "onnxruntime", "precision": "int8-cpu", "ms_per_image": 8.0, "mAP": 73.0},
        {"model": "other", "backend": "onnxruntime", "precision": "fp32", "ms_per_image": 1.0, "mAP": None},
    ]
    mark_front(rows)
    path = plot_accuracy_vs_latency(tmp_path / "plot.png", rows, device="2-core CPU", batch=1)
    width, height = _png_size(path)
    assert (width, height) == (int(PLOT_SIZE[0] * PLOT_DPI), int(PLOT_SIZE[1] * PLOT_DPI))
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (height, width)
    assert pixels[..., :3].std() > 0.01  # something was drawn


def test_plot_without_accuracy_still_writes_a_png(tmp_path) -> None:
    path = plot_accuracy_vs_latency(tmp_path / "empty.png", [], device="cpu", batch=8)
    assert _png_size(path) == (int(PLOT_SIZE[0] * PLOT_DPI), int(PLOT_SIZE[1] * PLOT_DPI))


def test_plot_axes_do_not_stretch_small_differences() -> None:
    """mAP starts at 0 (a 0.04-point spread stays small) and a wide latency range goes on a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edge_reid.bench.report import _sensible_axes

    fig, ax = plt.subplots()
    try:
        _sensible_axes(ax, [4.0, 7.5, 14.1, 47.9], [62.01, 62.05, 62.03, 62.05])
        assert ax.get_ylim() == (0.0, 70.0) and ax.get_xscale() == "log"
        _sensible_axes(ax, [10.0, 12.0], [99.5, 99.9])
        assert ax.get_ylim() == (0.0, 100.0)
    finally:
        plt.close(fig)
