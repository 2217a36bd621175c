"""benchmarks/gpu_check.sh and its table; the CUDA timer's window rule (all checkable on a CPU)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from edge_reid.bench.cuda_timing import calls_per_window
from scripts import REPO, load_script


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the GPU-less path")
def test_gpu_check_without_a_gpu_says_so_and_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "check"
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(out)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "No CUDA GPU" in lines[0] and not proc.stderr.strip()
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the GPU-less path")
def test_model_timing_without_a_gpu_exits_2(capsys) -> None:
    assert load_script("benchmarks/bench_models_gpu.py").main(["--out", "unused"]) == 2
    assert "No CUDA GPU" in capsys.readouterr().out


def test_calls_per_window() -> None:
    assert calls_per_window(0.01) == 200  # a 10 us kernel: 200 calls make a 2 ms window
    assert calls_per_window(5.0) == 1
    assert calls_per_window(0.0) == calls_per_window(float("nan")) == 2000
    assert calls_per_window(1e-6, max_calls=50) == 50


def test_table_reports_every_part_and_says_what_is_missing(tmp_path: Path) -> None:
    mod = load_script("benchmarks/gpu_check_table.py")
    empty = mod.table(tmp_path)
    assert empty.count("missing") == 4
    (tmp_path / "steps.txt").write_text("gpu_tests 0 90 170\nbench_kernels 124 200 200\n")
    (tmp_path / "gpu_tests.xml").write_text(
        '<testsuites><testsuite name="pytest" tests="7" failures="1" errors="0" skipped="2" time="88.5">'
        "</testsuite></testsuites>")
    bench = load_script("benchmarks/bench_kernels.py")
    rows = [bench._row("weighted_sum_gap_fwd_bwd", "B64x2048x8x4x4", {"eager": 3.0, "compile": 2.0, "triton": 1.0},
                       "x GB/s"),
            bench._row("device_copy", "1 GiB float32", {"eager": 4.0}),
            bench._row("masked_attention_fwd_bwd", "B2xN8xC8 bfloat16", {"eager": 1.0, "triton": 2.0, "sdpa": 0.5,
                                                                          "dispatch": 0.5, "path": "sdpa"})]
    (tmp_path / "bench_kernels.json").write_text(json.dumps({"rows": rows}))
    models = [{"model": m, "batch": 1, "dtype": "float16", "ms": ms, "images_per_s": 1000.0 / ms, "first_call_s": 2.0}
              for m, ms in (("resnet50", 1.0), ("visnet_paper_order", 4.0), ("visnet_fast_fusion", 2.0))]
    models[2].update(speedup_vs_paper_order=2.0, images_per_s_vs_resnet50=0.5)
    (tmp_path / "bench_models.json").write_text(json.dumps({"rows": models}))
    text = mod.table(tmp_path)
    lines = text.splitlines()
    assert len(lines) == 2 + 2 + 1 + 3 + 1 and "missing" not in text
    assert "SDPA 0.500 ms; dispatch -> sdpa 0.500 ms" in text
    assert "timed out, 200 s of 200 s" in text and "7 tests: 1 failed, 0 errors, 2 skipped, 88 s" in text
    assert "| 3.000 ms | 2.000 ms | 1.000 ms | 2.00x |" in text  # ratio against torch.compile
    assert "| 4.000 ms |  |  | 1.00x |" not in text and "device_copy" in text
    assert "VisNet eval float16 batch 1 | 4.000 ms |  | 2.000 ms | 2.00x | 500 img/s, 0.50x of ResNet50" in text
