"""The INT8 models benchmark's table (``benchmarks/int8_models.py``): its models, gates and rows.

:data:`PLAN` names each registry model's short synthetic training (cheapest first);
:func:`judge` adds the speed-up and the gate verdicts (min cosine >= 0.99, mAP drop <= 1 point,
INT8 images/s >= 2x FP32) to a measured row; :func:`markdown` writes the README table and
:func:`plot` the accuracy-vs-latency plot (Pareto front marked) from the same rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

#: model -> (training config under train/configs, overrides, what the table says about it); cheapest first.
PLAN: Dict[str, Tuple[str, Tuple[str, ...], str]] = {
    "visnet": ("visnet_synthetic_quick.yaml", (), "the build's default checkpoint, 3 epochs"),
    "mobilenetv2": ("bot_resnet50_synthetic.yaml", ("model.name=mobilenetv2", "train.epochs=10"),
                    "CE + triplet, 10 epochs"),
    "dcs_mobilenetv2": ("dcs_mobilenetv2_synthetic.yaml", ("train.epochs=10",), "CE + triplet + IBB, 10 epochs"),
    "fusionreid": ("fusionreid_synthetic.yaml", (), "reduced model (ViT width 96, depth 2), 60 steps"),
    # the ResNet50-sized models by VisNet's quick recipe (CE + label smoothing, 3 epochs, 64x32): the earlier
    # CE + triplet checkpoints (4 epochs at 32x16) could not run mostly INT8 within the accuracy gate
    "resnet50": ("bot_resnet50_synthetic_quick.yaml", ("model.name=resnet50",), "CE + label smoothing, 3 epochs"),
    "bot_resnet50": ("bot_resnet50_synthetic_quick.yaml", (), "CE + label smoothing, 3 epochs"),
    "agw": ("agw_synthetic_vi_quick.yaml", (), "visible-infrared set, CE + label smoothing, 6 x 30 steps"),
}
GATE_COS, GATE_MAP_DROP, GATE_SPEEDUP = 0.99, 1.0, 2.0
#: build artifact -> (table label, plot precision); the gate is judged on the cpu flavours (the ones ONNX
#: Runtime runs fast; the trt flavours are TensorRT's scheme, run here as DQ + float + Q, parity only).
VARIANTS = {"fp32": ("FP32", "fp32"), "int8_cpu": ("INT8 PTQ (auto)", "int8-cpu"), "int8_trt": ("", "int8-trt"),
            "int8_qat_cpu": ("INT8 QAT", "int8-qat-cpu"), "int8_qat_trt": ("", "int8-qat-trt")}
TABLE_ROWS = (("fp32", None), ("int8_cpu", "int8_trt"), ("int8_qat_cpu", "int8_qat_trt"))
BATCH = 8


def judge(row: Dict[str, Any]) -> None:
    """Add speed-up and gate verdicts to each INT8 variant of ``row``."""
    fp32 = row["variants"].get("fp32")
    for key, v in row["variants"].items():
        if key == "fp32" or fp32 is None:
            continue
        v["speedup"] = v["images_per_s"] / fp32["images_per_s"]
        v["map_drop"] = fp32["mAP"] - v["mAP"]
        v["accuracy_gate"] = v["cos_min"] >= GATE_COS and v["map_drop"] <= GATE_MAP_DROP
        v["speed_gate"] = v["speedup"] >= GATE_SPEEDUP


def markdown(results: Dict[str, Any], order: Sequence[str], machine: str) -> str:
    """The README table: one line per model and variant (cpu flavour; the trt flavour's min cosine beside)."""
    lines = [f"Machine: {machine}; ONNX Runtime CPU, one thread, batch {BATCH}, p50 of 20 calls. Cosine to the FP32 "
             "ONNX model on the synthetic query+gallery crops, Rank-1 / mAP on them; gates: min cos >= 0.99 and mAP "
             "drop <= 1 (accuracy), INT8 images/s >= 2x FP32 (speed). INT8 rows: the cpu flavour (U8 activations, "
             "what ONNX Runtime fuses); `trt` = the TensorRT flavour's min cosine (same float set).", "",
             "| model (training; input) | variant | float layers | min cos (cpu / trt) | mean cos | Rank-1 | mAP "
             "| ms / batch | speed-up | gates |",
             "|---|---|--:|---|--:|--:|--:|--:|--:|---|"]
    for model in order:
        row = results.get(model)
        if row is None:
            lines.append(f"| {model} | not finished in this run | | | | | | | | |")
            continue
        if "error" in row:
            lines.append(f"| {model} | failed: {row['error'][:120]} | | | | | | | | |")
            continue
        size = "x".join(str(s) for s in row["input_size"])
        for i, (key, trt) in enumerate(TABLE_ROWS):
            v, t = row["variants"].get(key), row["variants"].get(trt or "")
            name = f"{model} ({PLAN[model][2] if model in PLAN else row['training']}; {size})" if i == 0 else ""
            label = VARIANTS[key][0] + (" (from all-INT8)" if key.startswith("int8_qat") and row.get("qat_start") == "all"
                                        else "")
            if v is None:
                lines.append(f"| {name} | {label}: not measured | | | | | | | | |")
                continue
            if key == "fp32":
                lines.append(f"| {name} | {label} | - | - | - | {v['rank1']:.1f} | {v['mAP']:.1f} | {v['p50_ms']:.1f} "
                             f"| 1.00x | |")
                continue
            accuracy = "**accuracy miss**" if not v["accuracy_gate"] else \
                "ok (**trt flavour misses**)" if t and t["cos_min"] < GATE_COS else "ok"
            gate = accuracy + " / " + ("ok" if v["speed_gate"] else "**speed miss**")
            cos = f"{v['cos_min']:.4f} / {t['cos_min']:.4f}" if t else f"{v['cos_min']:.4f}"
            lines.append(f"| {name} | {label} | {v.get('float_nodes') or '?'} | {cos} | {v['cos_mean']:.4f} | "
                         f"{v['rank1']:.1f} | {v['mAP']:.1f} | {v['p50_ms']:.1f} | {v['speedup']:.2f}x | {gate} |")
    return "\n".join(lines) + "\n"


def plot(results: Dict[str, Any], path: Path, machine: str) -> Path:
    """Accuracy (mAP) vs ms per image of every model at every precision and backend measured; Pareto front marked."""
    from edge_reid.bench.pareto import mark_front
    from edge_reid.bench.report import plot_accuracy_vs_latency

    rows: List[Dict[str, Any]] = []
    for model, row in results.items():
        if "error" in row:
            continue
        for key, v in row["variants"].items():
            rows.append({"model": model, "backend": "onnxruntime", "precision": VARIANTS[key][1],
                         "ms_per_image": v["p50_ms"] / BATCH, "mAP": v["mAP"]})
        eager = row.get("torch_eager_fp32")
        if eager:
            rows.append({"model": model, "backend": "torch-eager", "precision": "fp32",
                         "ms_per_image": eager["p50_ms"] / BATCH, "mAP": eager["mAP"]})
    mark_front(rows)
    return plot_accuracy_vs_latency(path, rows, machine, BATCH)


__all__ = ["BATCH", "GATE_COS", "GATE_MAP_DROP", "GATE_SPEEDUP", "PLAN", "TABLE_ROWS", "VARIANTS", "judge",
           "markdown", "plot"]
