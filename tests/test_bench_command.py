"""``edge-reid bench`` end to end on a tiny model (input 64x32)."""

from __future__ import annotations

import json

import pytest

from edge_reid.cli import main


def _common(out):
    return ["bench", "--out", str(out), "--input-size", "64x32", "--calib", "random", "--batches", "1,2",
            "--iters", "2", "--warmup", "1", "--backends", "torch-eager,onnxruntime,tensorrt",
            "--precisions", "fp32,int8-cpu", "--complexity-models", "mobilenetv2", "--complexity-input", "64x32"]


def test_quick_bench_of_an_untrained_model_writes_every_table(tmp_path, capsys) -> None:
    out = tmp_path / "bench"
    assert main(_common(out) + ["--model", "mobilenetv2"]) == 0
    printed = capsys.readouterr().out
    assert "FlopCounterMode FLOPs / 2" in printed and "not measured" in printed
    for name in ("complexity", "latency", "accuracy_vs_latency"):
        assert (out / f"{name}.csv").is_file() and (out / f"{name}.json").is_file()
    assert (out / "accuracy_vs_latency.png").stat().st_size > 0
    latency = json.loads((out / "latency.json").read_text())
    keys = {(r["backend"], r["precision"], r["batch"]) for r in latency["rows"]}
    assert keys == {(b, p, n) for b, p in [("torch-eager", "fp32"), ("onnxruntime", "fp32"),
                                            ("onnxruntime", "int8-cpu")] for n in (1, 2)}
    assert all(r["p50_ms"] > 0 and r["speedup_vs_eager_fp32"] > 0 for r in latency["rows"])
    assert latency["environment"]["ort_threads"] == 1
    assert any(n["backend"] == "tensorrt" for n in latency["not_measured"])  # no GPU here: a note, not a crash
    accuracy = json.loads((out / "accuracy_vs_latency.json").read_text())
    assert {r["batch"] for r in accuracy["rows"]} == {1}
    assert all(r["mAP"] is None for r in accuracy["rows"])  # untrained weights stay off the plot
    assert (out / "artifacts" / "mobilenetv2" / "manifest.json").is_file()


def test_unknown_backend_is_one_sentence_and_exit_2(tmp_path, capsys) -> None:
    assert main(["bench", "--out", str(tmp_path), "--backends", "cuda-magic", "--stages", "latency"]) == 2
    assert "Unknown --backends" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_of_a_checkpoint_evaluates_each_precision_and_plots_the_front(tmp_path) -> None:
    from edge_reid.models import build_model
    from edge_reid.models.checkpoint import save_checkpoint

    model = build_model("mobilenetv2", num_classes=4, input_size=(64, 32))
    checkpoint = save_checkpoint(tmp_path / "m.pth", model, model.meta("synthetic"))
    out = tmp_path / "bench"
    assert main(_common(out) + ["--checkpoint", str(checkpoint), "--eval-limit", "40",
                                "--stages", "latency,accuracy"]) == 0
    rows = json.loads((out / "accuracy_vs_latency.json").read_text())["rows"]
    assert all(0.0 <= r["mAP"] <= 100.0 and r["mAP_per_gmac"] > 0 for r in rows)
    assert any(r["pareto"] for r in rows)
    eager = next(r for r in rows if r["backend"] == "torch-eager")
    ort = next(r for r in rows if r["backend"] == "onnxruntime" and r["precision"] == "fp32")
    assert eager["mAP"] == ort["mAP"]  # the torch rows share the FP32 weights' accuracy
    # the accuracy stage alone reuses the artifacts and latency of the previous run
    assert main(["bench", "--out", str(out), "--stages", "accuracy", "--eval-limit", "40"]) == 0
    assert (out / "accuracy_vs_latency.png").is_file()
