"""Serving rows of edge-reid bench: the --serving preset, CUDA-graph and AOTInductor targets."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_reid.bench.command import ArtifactSet, _apply_defaults, add_arguments
from edge_reid.bench.latency import run_grid
from edge_reid.bench.serving import apply_serving_preset, serving_targets, use_fusion_impl
from edge_reid.models import build_model

SIZE = (64, 32)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_serving_preset_per_device():
    cpu = _args("--serving")
    apply_serving_preset(cpu, cuda=False)
    assert cpu.stages == ["latency"] and cpu.batches == [1, 8] and cpu.models == ["resnet50"]
    assert set(cpu.backends) == {"torch-eager", "onnxruntime", "aoti"} and cpu.precisions == ["fp32", "int8-cpu"]
    assert cpu.fusion_impl is None
    gpu = _args("--serving", "--batches", "4")
    apply_serving_preset(gpu, cuda=True)
    assert gpu.batches == [4] and gpu.precisions == ["fp32", "fp16", "bf16"] and gpu.fusion_impl == "fast"
    assert {"torch-eager", "torch-compile", "torch-cudagraph", "aoti"} <= set(gpu.backends)
    plain = _args()
    _apply_defaults(plain)
    assert plain.stages == ["complexity", "latency", "accuracy"]


def test_serving_targets_on_this_machine_say_what_cannot_run():
    model = build_model("resnet50", num_classes=3, input_size=SIZE).eval()
    s = ArtifactSet(model.meta("test"), model, trained=False, folder=Path("."))
    notes = []
    device = "cuda" if torch.cuda.is_available() else "cpu"
    targets = serving_targets([s], ["torch-cudagraph", "aoti"], ["fp32", "fp16", "bf16", "int8-cpu"], device, notes)
    got = {(t.backend, t.precision) for t in targets}
    if device == "cpu":
        assert got == {("aoti", "fp32")}
        assert {(n["backend"], n["precision"]) for n in notes} == {("torch-cudagraph", "all"), ("aoti", "fp16"),
                                                                   ("aoti", "bf16")}
    else:
        assert got == {(b, p) for b in ("torch-cudagraph", "aoti") for p in ("fp32", "fp16", "bf16")} and not notes


def test_fusion_impl_switch_keeps_the_embeddings():
    torch.manual_seed(0)
    model = build_model("visnet", num_classes=3, input_size=SIZE).eval()
    x = torch.rand(2, 3, *SIZE)
    with torch.no_grad():
        ref = model(x)
        assert use_fusion_impl(model, "fast") == 1
        torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-4)
    assert use_fusion_impl(build_model("resnet50", num_classes=3, input_size=SIZE), "fast") == 0


@pytest.mark.gpu
def test_cuda_graph_and_package_rows_on_a_gpu(tmp_path):
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=3, input_size=SIZE).eval()
    s = ArtifactSet(model.meta("test"), model, trained=False, folder=tmp_path)
    notes = []
    targets = serving_targets([s], ["torch-cudagraph", "aoti"], ["fp32", "fp16"], "cuda", notes)
    rows, skipped = run_grid(targets, [1, 8], SIZE, iters=3, warmup=1)
    assert not skipped and len(rows) == 8 and all(r["p50_ms"] > 0 for r in rows)
    assert (tmp_path / "model_aoti_cuda_fp16.pt2").is_file()
    x = np.random.default_rng(0).random((8, 3, *SIZE), dtype=np.float32)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model(torch.from_numpy(x)), dim=1).numpy()
    for t in targets:
        out = np.asarray(t.make()(x))
        out = out / np.linalg.norm(out, axis=1, keepdims=True)
        assert (out * ref).sum(1).min() >= 0.999, (t.backend, t.precision)
