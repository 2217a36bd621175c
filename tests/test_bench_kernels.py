"""benchmarks/bench_kernels.py: the multiply-add line everywhere, the GPU table where there is one."""

import json
from pathlib import Path

import pytest
import torch

from scripts import load_script


def _script():
    return load_script("benchmarks/bench_kernels.py")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the GPU-less path")
def test_without_a_gpu_it_says_so_and_exits_0(tmp_path: Path, capsys) -> None:
    assert _script().main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "paper order 1.880 G multiply-adds, exact cheaper form 0.479 G" in out
    assert "No CUDA GPU is visible" in out and not list(tmp_path.iterdir())


@pytest.mark.gpu
def test_quick_gpu_run_writes_every_row(tmp_path: Path) -> None:
    assert _script().main(["--quick", "--dtype", "float32", "bfloat16", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "bench_kernels.json").read_text())["rows"]
    ops = [r["op"] for r in rows]
    assert ops.count("masked_attention_fwd_bwd") == 4  # 2 quick shapes x 2 dtypes
    for path in ("reference", "compiled", "triton", "sdpa"):  # one row per path, shape and dtype
        assert ops.count(f"masked_attention_fwd_bwd path={path}") == 4
    summary = [r for r in rows if r["op"] == "masked_attention_fwd_bwd"]
    assert all(r["dispatch_path"] in ("reference", "compiled", "triton", "sdpa") for r in summary)
    assert ops.count("linear_attention_fwd_bwd") == 4  # 2 quick DCS shapes x 2 dtypes
    assert {"visnet_fusion_fwd_bwd", "sampled_projection_fwd", "weighted_sum_gap_fwd", "weighted_sum_gap_fwd_bwd",
            "device_copy"} <= set(ops)
    assert all(r["triton_ms"] > 0 for r in rows if r["op"] != "device_copy")
