"""Can INT8 reach 2x FP32 on ONNX Runtime (CPU) at all? FP32 vs every-layer INT8, per model and input size.

    python benchmarks/int8_speed.py [--models resnet50,...] [--sizes bench,128x64,256x128] [--out runs/int8_speed]
                                    [--extra-ops Add,GlobalAveragePool]

Per registry model of ``benchmarks/int8_models.py`` and input size: the model is built with random
weights (the architecture and options of its cached benchmark checkpoint, at the given size;
``bench`` = the size the int8_models benchmark uses), exported to FP32 ONNX, and quantized with
*every* Conv/Gemm/MatMul in INT8 (the CPU flavour: U8 activations, per-channel S8 weights; MinMax
ranges over 16 random crops: the values do not change the speed). Both graphs are timed at batch 8
on one thread, alternating (FP32, INT8) rounds, the best p50 of each kept. Every-layer INT8 is the
fastest any float set can be, so its speed-up is the ceiling of what sensitivity or QAT can reach.
``--extra-ops`` quantizes more op types beside them (an experiment: measured, it does not raise the ceiling,
since ONNX Runtime already fuses the residual Adds into QLinearAdd). Rows are written after each measurement (``<out>/int8_speed.json``, ``.md``), resumable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from edge_reid.utils.atomic import atomic_write_json, atomic_write_text

BATCH = 8


def _checkpoint_meta(model: str) -> Tuple[Any, Dict[str, Any]]:
    """(ModelMeta, build options) of ``model``'s cached int8_models checkpoint (the newest one)."""
    import torch

    from edge_reid.metadata import ModelMeta
    from edge_reid.models.registry import MODELS
    from edge_reid.utils.paths import cache_dir

    pattern = "visnet_synthetic_quick-*.pth" if model == "visnet" else f"int8bench-{model}-*.pth"
    found = sorted((cache_dir() / "checkpoints").glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no cached checkpoint {pattern}; run benchmarks/int8_models.py --train-only first")
    payload = torch.load(found[-1], map_location="cpu", weights_only=True)
    meta = ModelMeta.from_dict(payload["meta"], source=str(found[-1]))
    factory = MODELS.get(meta.model)
    options = {**dict(getattr(factory, "unrecorded_defaults", {}) or {}), **dict(meta.model_options)}
    return meta, options


def measure(model: str, size: Optional[Tuple[int, int]], iters: int, rounds: int, say=print,
            extra_ops: Sequence[str] = ()) -> Dict[str, Any]:
    """FP32 and every-layer INT8 (cpu flavour) images/s of ``model`` at ``size`` (None: its benchmark size);
    ``extra_ops``: op types quantized beside Conv/Gemm/MatMul (e.g. Add, GlobalAveragePool)."""
    import numpy as np
    import torch

    from edge_reid.deploy.int8 import QUANTIZED_OP_TYPES, Int8Quantizer
    from edge_reid.deploy.onnx_export import OnnxExporter
    from edge_reid.models.registry import build_model
    from edge_reid.runtime import load_embedder
    from edge_reid.runtime.inputs import example_ids
    from edge_reid.utils.timing import measure_latency

    meta, options = _checkpoint_meta(model)
    size = tuple(size or meta.input_size)
    torch.manual_seed(0)
    net = build_model(meta.model, num_classes=meta.num_ids, **{**options, "input_size": size}).eval()
    meta = dataclasses.replace(meta, input_size=size)
    x = np.random.default_rng(0).random((BATCH, 3, *size), dtype=np.float32)
    ids = example_ids(meta, BATCH)
    with tempfile.TemporaryDirectory(prefix="int8-speed.") as tmp:
        fp32 = OnnxExporter().export(net, meta, Path(tmp) / "fp32.onnx").path
        calib = np.random.default_rng(1).random((16, 3, *size), dtype=np.float32)
        int8 = Int8Quantizer(calibrate_method="MinMax", keep_float=(),
                             op_types=(*QUANTIZED_OP_TYPES, *extra_ops)).quantize(
            fp32, calib, {"cpu": Path(tmp) / "int8_cpu.onnx"}, float_nodes=[])["cpu"]
        runners = {k: load_embedder(p, "onnxruntime", threads=1) for k, p in (("fp32", fp32), ("int8", int8))}
        best: Dict[str, float] = {}
        for _ in range(rounds):  # alternating, so a burst of load on the shared CPU hits both
            for k, emb in runners.items():
                ms = measure_latency(lambda b: emb.embed(b, **ids), x, iters=iters)["p50_ms"]
                best[k] = min(best.get(k, float("inf")), float(ms))
    row = {"model": model, "input_size": list(size), "fp32_ms": round(best["fp32"], 3), "int8_ms": round(best["int8"], 3),
           "fp32_img_s": round(BATCH * 1000 / best["fp32"], 1), "int8_img_s": round(BATCH * 1000 / best["int8"], 1),
           "speedup": round(best["fp32"] / best["int8"], 3), "extra_ops": list(extra_ops)}
    say(f"[{model} {size[0]}x{size[1]}{' +' + '+'.join(extra_ops) if extra_ops else ''}] FP32 {row['fp32_ms']:.1f} ms, all-INT8 {row['int8_ms']:.1f} ms per batch of "
        f"{BATCH}: {row['speedup']:.2f}x")
    return row


def markdown(rows: List[Dict[str, Any]], machine: str) -> str:
    lines = [f"Machine: {machine}; ONNX Runtime CPU, one thread, batch {BATCH}, best p50 of alternating rounds; "
             "random weights; INT8 = every Conv/Gemm/MatMul quantized (cpu flavour).", "",
             "| model | input | FP32 ms / batch | all-INT8 ms / batch | FP32 img/s | all-INT8 img/s | ceiling speed-up |",
             "|---|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        extra = "".join(f" +{op}" for op in r.get("extra_ops", []))
        lines.append(f"| {r['model']}{extra} | {r['input_size'][0]}x{r['input_size'][1]} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} "
                     f"| {r['fp32_img_s']:.0f} | {r['int8_img_s']:.0f} | {r['speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


def _sizes(text: str) -> List[Tuple[str, Optional[Tuple[int, int]]]]:
    """``--sizes``: each entry with its input size (None for 'bench', the model's own)."""
    from edge_reid.bench.options import parse_hw

    return [(t, None if t == "bench" else parse_hw(t)) for t in (s.strip() for s in text.split(",")) if t]


def main(argv: Optional[Sequence[str]] = None) -> int:
    from int8_models import PLAN  # the sibling script (its folder is on the path when run as a script)

    parser = argparse.ArgumentParser(prog="int8_speed.py", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(PLAN))
    parser.add_argument("--sizes", type=_sizes, default="bench,128x64,256x128",
                        help="'bench' or HxW, comma-separated")
    parser.add_argument("--out", default="runs/int8_speed")
    parser.add_argument("--extra-ops", default="", help="op types quantized beside Conv/Gemm/MatMul, e.g. "
                        "Add,GlobalAveragePool (rows kept apart from the default ones)")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--machine", default="2-core CPU (Intel Xeon @ 2.50 GHz), shared")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "int8_speed.json"
    rows: List[Dict[str, Any]] = json.loads(store.read_text()) if store.is_file() else []
    extra_ops = tuple(v.strip() for v in args.extra_ops.split(",") if v.strip())
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        for text, size in args.sizes:
            try:
                row = measure(model, size, args.iters, args.rounds, extra_ops=extra_ops)
            except Exception as exc:  # one model / size failing keeps the others
                print(f"[{model} {text}] failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)
                continue
            row.update(machine=args.machine, finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
            key = lambda r: (r["model"], r["input_size"], r.get("extra_ops", []))  # noqa: E731
            rows = [r for r in rows if key(r) != key(row)] + [row]
            atomic_write_json(store, rows)
            atomic_write_text(out / "int8_speed.md", markdown(rows, args.machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
