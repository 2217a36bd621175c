"""The shared latency timer: percentile statistics and timing of a real callable."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from edge_reid.bench.latency import (LatencyStats, Target, add_ratios, environment, latency_stats,
                                     measure_latency, run_grid, time_callable)
from edge_reid.errors import InvalidInputError


def _percentile(values, q):
    """Linear interpolation between closest ranks, written out (rank = q/100 * (n - 1))."""
    ordered = sorted(values)
    rank = q / 100.0 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def test_percentiles_of_a_known_list() -> None:
    times = [12.0, 3.0, 7.5, 1.0, 9.0, 4.0, 30.0, 2.0, 5.5, 6.0, 8.0]
    stats = latency_stats(times, batch=4)
    assert stats.p50_ms == pytest.approx(_percentile(times, 50)) == pytest.approx(6.0)
    assert stats.p90_ms == pytest.approx(_percentile(times, 90))
    assert stats.p99_ms == pytest.approx(_percentile(times, 99))
    assert stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms == 30.0
    assert stats.min_ms == 1.0 and stats.iters == len(times)
    assert stats.mean_ms == pytest.approx(sum(times) / len(times))
    assert stats.images_per_s == pytest.approx(4 * 1000.0 / 6.0)
    assert stats.ms_per_image == pytest.approx(1.5)


def test_empty_timings_and_bad_batch_are_clear_errors() -> None:
    with pytest.raises(InvalidInputError, match="No timings"):
        latency_stats([])
    with pytest.raises(InvalidInputError, match="batch"):
        latency_stats([1.0], batch=0)
    with pytest.raises(InvalidInputError, match="iters"):
        time_callable(lambda: None, iters=0)


def test_timer_runs_the_callable_warmup_plus_iters_times_and_measures_it() -> None:
    calls = []

    def work() -> None:
        calls.append(1)
        time.sleep(0.002)

    stats = time_callable(work, iters=5, warmup=2, batch=3)
    assert isinstance(stats, LatencyStats)
    assert len(calls) == 7 and stats.iters == 5 and stats.batch == 3
    assert 2.0 <= stats.min_ms <= stats.p50_ms <= stats.p99_ms <= stats.max_ms
    assert set(stats.to_dict()) >= {"p50_ms", "p90_ms", "p99_ms", "images_per_s", "ms_per_image"}


def test_time_budget_stops_early_but_keeps_min_iters() -> None:
    stats = time_callable(lambda: time.sleep(0.01), iters=1000, warmup=0, max_seconds=0.0, min_iters=3)
    assert stats.iters == 3


def test_measure_latency_times_a_real_numpy_function() -> None:
    x = np.random.default_rng(0).random((8, 64), dtype=np.float32)
    result = measure_latency(lambda b: b @ b.T, x, iters=4, warmup=1)
    assert result["p50_ms"] > 0 and result["p50_ms"] <= result["p99_ms"]
    assert result["images_per_s"] == pytest.approx(8 * 1000.0 / result["p50_ms"])


def test_grid_ratios_refer_to_eager_fp32_of_the_same_model_and_batch() -> None:
    rows = [{"model": "a", "backend": "torch-eager", "precision": "fp32", "batch": 1, "p50_ms": 10.0},
            {"model": "a", "backend": "onnxruntime", "precision": "int8-cpu", "batch": 1, "p50_ms": 2.5},
            {"model": "a", "backend": "onnxruntime", "precision": "fp32", "batch": 8, "p50_ms": 5.0},
            {"model": "b", "backend": "onnxruntime", "precision": "fp32", "batch": 1, "p50_ms": 1.0}]
    add_ratios(rows)
    assert rows[0]["speedup_vs_eager_fp32"] == pytest.approx(1.0)
    assert rows[1]["speedup_vs_eager_fp32"] == pytest.approx(4.0)
    assert rows[2]["speedup_vs_eager_fp32"] is None  # no eager baseline at batch 8
    assert rows[3]["speedup_vs_eager_fp32"] is None  # nor for model b


def test_grid_times_real_callables_and_turns_failures_into_notes() -> None:
    def make_ok():
        return lambda x: x.sum(axis=(1, 2, 3))

    def make_broken():
        raise RuntimeError("no compiler here\nmore detail")

    targets = [Target("m", "torch-eager", "fp32", "-", make_ok), Target("m", "torch-compile", "fp32", "-", make_broken)]
    rows, skipped = run_grid(targets, [1, 2], (8, 4), iters=3, warmup=1, say=lambda _: None)
    assert [(r["backend"], r["batch"]) for r in rows] == [("torch-eager", 1), ("torch-eager", 2)]
    assert all(r["speedup_vs_eager_fp32"] == pytest.approx(1.0) for r in rows)
    assert skipped == [{"model": "m", "backend": "torch-compile", "precision": "fp32", "batch": None,
                        "reason": "RuntimeError: no compiler here"}]


def test_environment_names_device_threads_and_versions() -> None:
    env = environment(ort_threads=1)
    assert env["cpu_count"] >= 1 and env["device"]
    assert env["ort_threads"] == 1 and env["torch_threads"] >= 1
    assert env["numpy_version"] == np.__version__
