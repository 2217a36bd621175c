"""Pareto front of (latency, accuracy) points and the join of latency with accuracy."""

from __future__ import annotations

import itertools

import pytest

from edge_reid.bench.pareto import join_accuracy, pareto_front, per_gmac
from edge_reid.errors import InvalidInputError


def _brute_force(points):
    keep = []
    for i, (x, y) in enumerate(points):
        if not any((u <= x and v >= y) and (u, v) != (x, y) for u, v in points):
            keep.append(i)
    return set(keep)


def test_dominated_points_are_excluded() -> None:
    points = [(10.0, 80.0), (5.0, 70.0), (12.0, 79.0), (5.0, 60.0), (1.0, 50.0), (20.0, 85.0), (15.0, 85.0)]
    front = pareto_front(points)
    assert front == [4, 1, 0, 6]  # ordered by latency; (12,79) (5,60) (20,85) are dominated
    assert set(front) == _brute_force(points)


def test_ties_are_all_kept_and_equal_latency_keeps_the_more_accurate() -> None:
    points = [(2.0, 70.0), (2.0, 70.0), (2.0, 65.0), (3.0, 70.0)]
    assert pareto_front(points) == [0, 1]


def test_front_matches_brute_force_on_a_grid() -> None:
    points = [(float(x), float(y)) for x, y in itertools.product(range(4), range(4)) if (x * 7 + y * 3) % 5 != 0]
    assert set(pareto_front(points)) == _brute_force(points)
    assert pareto_front([]) == []


def test_join_keeps_one_row_per_backend_precision_and_marks_the_front() -> None:
    latency = [
        {"model": "visnet", "backend": "torch-eager", "precision": "fp32", "batch": 1, "p50_ms": 40.0, "images_per_s": 25.0},
        {"model": "visnet", "backend": "onnxruntime", "precision": "fp32", "batch": 1, "p50_ms": 20.0, "images_per_s": 50.0},
        {"model": "visnet", "backend": "onnxruntime", "precision": "int8-cpu", "batch": 1, "p50_ms": 8.0, "images_per_s": 125.0},
        {"model": "visnet", "backend": "onnxruntime", "precision": "fp32", "batch": 8, "p50_ms": 80.0, "images_per_s": 100.0},
        {"model": "other", "backend": "onnxruntime", "precision": "fp32", "batch": 1, "p50_ms": 1.0, "images_per_s": 1e3},
    ]
    accuracy = {"visnet:fp32": {"rank1": 90.0, "mAP": 75.0}, "visnet:int8-cpu": {"rank1": 88.0, "mAP": 74.0}}
    rows = join_accuracy(latency, accuracy, {"visnet": 2.5}, batch=1)
    assert [(r["backend"], r["precision"]) for r in rows] == [("torch-eager", "fp32"), ("onnxruntime", "fp32"),
                                                              ("onnxruntime", "int8-cpu"), ("onnxruntime", "fp32")]
    eager, ort, int8, other = rows
    assert eager["mAP"] == 75.0  # the torch backends share the FP32 weights' accuracy
    assert eager["pareto"] is False and ort["pareto"] is True and int8["pareto"] is True
    assert other["mAP"] is None and other["pareto"] is None and other["mAP_per_gmac"] is None
    assert int8["mAP_per_gmac"] == pytest.approx(74.0 / 2.5) and int8["rank1_per_gmac"] == pytest.approx(88.0 / 2.5)
    assert int8["ms_per_image"] == pytest.approx(8.0)


def test_join_at_an_unmeasured_batch_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="batch 4"):
        join_accuracy([{"model": "m", "backend": "b", "precision": "fp32", "batch": 1, "p50_ms": 1.0,
                        "images_per_s": 1.0}], {}, {}, batch=4)


def test_accuracy_per_gmac_is_the_papers_ratio() -> None:
    assert per_gmac(87.05, 4.601) == pytest.approx(18.92, abs=0.01)  # the VisNet paper's 18.91
    assert per_gmac(None, 1.0) is None and per_gmac(50.0, 0.0) is None
