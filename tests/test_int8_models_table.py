"""benchmarks/int8_models.py: gate verdicts, the table's rows (misses and unfinished models said), bad input."""

from __future__ import annotations

from pathlib import Path

from scripts import load_script

bench = load_script("benchmarks/int8_models.py")


def variant(cos: float, mAP: float, images_per_s: float) -> dict:
    return {"cos_min": cos, "cos_mean": cos, "rank1": 50.0, "mAP": mAP, "p50_ms": 8000.0 / images_per_s,
            "images_per_s": images_per_s, "float_nodes": "3 of 10"}


def row() -> dict:
    return {"model": "visnet", "training": "t", "input_size": [64, 32], "variants": {
        "fp32": variant(1.0, 60.0, 100.0),
        "int8_cpu": variant(0.995, 59.5, 250.0),  # passes both
        "int8_trt": variant(0.993, 59.5, 50.0),
        "int8_qat_cpu": variant(0.985, 58.0, 150.0),  # misses both
        "int8_qat_trt": variant(0.991, 59.9, 40.0),
    }}


def test_gates_and_table() -> None:
    r = row()
    bench.judge(r)
    ptq, qat = r["variants"]["int8_cpu"], r["variants"]["int8_qat_cpu"]
    assert ptq["accuracy_gate"] and ptq["speed_gate"] and abs(ptq["speedup"] - 2.5) < 1e-9
    assert not qat["accuracy_gate"] and not qat["speed_gate"] and abs(qat["map_drop"] - 2.0) < 1e-9
    # the mAP drop alone fails the accuracy gate
    r2 = row()
    r2["variants"]["int8_cpu"]["mAP"] = 58.5
    bench.judge(r2)
    assert not r2["variants"]["int8_cpu"]["accuracy_gate"]
    text = bench.markdown({"visnet": r, "agw": {"model": "agw", "error": "ValueError: boom"}},
                          ["visnet", "agw", "resnet50"], "test machine")
    lines = text.splitlines()
    assert "test machine" in lines[0]
    ptq_line = next(line for line in lines if "INT8 PTQ" in line)
    qat_line = next(line for line in lines if "INT8 QAT" in line)
    assert "0.9950 / 0.9930" in ptq_line and "2.50x" in ptq_line and "miss" not in ptq_line
    assert "**accuracy miss**" in qat_line and "**speed miss**" in qat_line
    # a cpu flavour that passes beside a trt flavour that misses is said
    r3 = row()
    r3["variants"]["int8_trt"]["cos_min"] = 0.98
    bench.judge(r3)
    line = next(x for x in bench.markdown({"visnet": r3}, ["visnet"], "m").splitlines() if "INT8 PTQ" in x)
    assert "trt flavour misses" in line
    assert any(line.startswith("| agw | failed: ValueError: boom") for line in lines)
    assert any(line.startswith("| resnet50 | not finished") for line in lines)


def test_plot_marks_a_front(tmp_path: Path) -> None:
    r = row()
    bench.judge(r)
    r["torch_eager_fp32"] = {"p50_ms": 200.0, "images_per_s": 40.0, "rank1": 50.0, "mAP": 60.0}
    path = bench.plot({"visnet": r}, tmp_path / "p.png", "test machine")
    assert path.is_file() and path.stat().st_size > 1000


def test_unknown_model_is_one_sentence(capsys, tmp_path: Path) -> None:
    code = bench.main(["--models", "nosuch", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Unknown model 'nosuch'" in err and err.count("\n") == 0


def test_resnet50_family_trains_by_the_visnet_quick_recipe() -> None:
    """Every PLAN config loads with its overrides; the ResNet50s resolve to VisNet's quick recipe."""
    from edge_reid.engine.config import load_config

    configs = {m: load_config(str(bench.REPO / "train" / "configs" / c), o) for m, (c, o, _) in bench.PLAN.items()}
    quick = configs["visnet"]
    for model in ("resnet50", "bot_resnet50"):
        cfg = configs[model]
        assert cfg["model"]["name"] == model
        assert [t["name"] for t in cfg["loss"]["terms"]] == ["cross_entropy"]
        assert cfg["loss"]["terms"][0]["label_smoothing"] == quick["loss"]["terms"][0]["label_smoothing"]
        assert cfg["train"]["epochs"] == quick["train"]["epochs"]
        assert list(cfg["data"]["input_size"]) == list(quick["data"]["input_size"]) == [64, 32]
