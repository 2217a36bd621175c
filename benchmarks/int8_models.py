"""FP32 vs INT8 post-training (auto float set) vs INT8 QAT on every registry model, one build per model.

    python benchmarks/int8_models.py [--models visnet,mobilenetv2,...] [--out runs/int8_models]

Per model (cheapest first): a checkpoint from a short synthetic training run (cached under
``cache_dir()/checkpoints``, keyed by config and overrides; VisNet uses the build's default
checkpoint), then one ``edge-reid build --precisions fp32,int8 --qat`` on ONNX Runtime (CPU) at
batch 8. Every finished model is written at once (``<out>/int8_models.json`` and ``.md``,
atomically), so a killed run resumes at the next model; ``--plot`` draws
``accuracy_vs_latency.png`` from the same JSON. The gates are checked here (min cosine >= 0.99,
mAP drop <= 1 point, INT8 images/s >= 2x FP32), not enforced by the build, so a miss is a row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

# the table (plan, gates, verdicts, markdown, plot) is library code; its names stay importable from here
from edge_reid.bench.int8_table import BATCH, PLAN, VARIANTS, judge, markdown, plot
from edge_reid.utils.atomic import atomic_path, atomic_write_json, atomic_write_text
from edge_reid.utils.paths import cache_dir

REPO = Path(__file__).resolve().parents[1]

TRAIN_THREADS = 1


def checkpoint_for(model: str, say=print, reuse: bool = False) -> Path:
    """The cached checkpoint of ``model``'s short synthetic training (trained on first use); ``reuse``: the
    newest cached one of ``model`` when none matches today's config (the table names it)."""
    from edge_reid import __version__
    from edge_reid.deploy.default_model import default_checkpoint
    from edge_reid.engine import train
    from edge_reid.engine.config import load_config

    config, overrides, _ = PLAN[model]
    if model == "visnet":
        # an earlier cache entry of the same quick training (its key also covers the config's qat section,
        # which does not change the trained weights) saves its retraining
        from edge_reid.deploy.default_model import _quick_config_path, quick_checkpoint_path

        if not quick_checkpoint_path(_quick_config_path()).is_file():
            earlier = sorted((cache_dir() / "checkpoints").glob("visnet_synthetic_quick-*.pth"), key=os.path.getmtime)
            if earlier:
                say(f"[visnet] using the earlier quick checkpoint {earlier[-1]}")
                return earlier[-1]
        return default_checkpoint(say)
    path = REPO / "train" / "configs" / config
    resolved = json.dumps(load_config(str(path), overrides), sort_keys=True, default=str)
    digest = hashlib.sha256(f"{__version__}\n{resolved}".encode()).hexdigest()[:12]
    cached = cache_dir() / "checkpoints" / f"int8bench-{model}-{digest}.pth"
    if cached.is_file():
        return cached
    earlier = sorted((cache_dir() / "checkpoints").glob(f"int8bench-{model}-*.pth"), key=os.path.getmtime)
    if reuse and earlier:
        say(f"[{model}] reusing the cached checkpoint {earlier[-1]} (trained under an earlier config)")
        return earlier[-1]
    say(f"[{model}] training {config} {' '.join(overrides)}")
    t0 = time.time()
    # one thread: on the shared 2 cores two spinning threads ran a step 100x slower (measured)
    result = train(str(path), (*overrides, f"output.dir={cache_dir() / 'runs' / f'{cached.stem}-{os.getpid()}'}",
                               "train.eval_at_start=false", f"train.threads={TRAIN_THREADS}"))
    with atomic_path(cached) as tmp:
        shutil.copyfile(result.checkpoint, tmp)
    say(f"[{model}] trained in {time.time() - t0:.0f} s: {result.metrics}")
    return cached


def build_model_row(model: str, out: Path, threads: int, calib_images: int, eval_limit: int,
                    say=print, qat_start: str = "ptq", reuse: bool = False) -> Dict[str, Any]:
    """One build (fp32, int8 auto, QAT) of ``model``, plus PyTorch eager FP32 timed alike; the row's numbers."""
    import numpy as np
    import torch

    from edge_reid.bench.latency import measure_latency
    from edge_reid.deploy.parity import ParityError
    from edge_reid.deploy.pipeline import BuildConfig, run_build
    from edge_reid.models.checkpoint import load_model_from_checkpoint
    from edge_reid.runtime.inputs import example_ids

    ckpt = checkpoint_for(model, say, reuse)
    t0 = time.time()
    cfg = BuildConfig(checkpoint=str(ckpt), out=str(out / model), precisions=("fp32", "int8"), qat=True,
                      batch=(1, BATCH, BATCH), backend="onnxruntime", threads=threads, latency_iters=20,
                      calib_images=calib_images, eval_limit=eval_limit, qat_settings={"start": qat_start})
    try:
        manifest = run_build(cfg, say)
    except ParityError as exc:  # the build is complete (the gates are checked last); judged below
        say(f"[{model}] {exc}")
        manifest = json.loads((out / model / "manifest.json").read_text())
    rows = {Path(r["artifact"]).stem.replace("model_", ""): r for r in manifest["latency"] if r["batch"] == BATCH}
    parity = {Path(p["artifact"]).stem.replace("model_", ""): p for p in manifest["parity"]}
    result: Dict[str, Any] = {"model": model, "training": PLAN[model][2], "input_size": manifest["meta"]["input_size"],
                              "build_s": round(time.time() - t0, 1), "threads": threads,
                              "calib_images": calib_images, "eval_images": eval_limit, "qat_start": qat_start,
                              "checkpoint": ckpt.name,
                              "variants": {}}
    for key in VARIANTS:
        lat, par = rows.get(key), parity.get(key)
        if lat is None or par is None:
            continue
        result["variants"][key] = {"cos_min": par["cosine_min"], "cos_mean": par["cosine_mean"], "rank1": par["rank1"],
                                   "mAP": par["mAP"], "p50_ms": lat["p50_ms"], "images_per_s": lat["images_per_s"],
                                   "float_nodes": _float_nodes(Path(manifest["artifacts"].get(key, "")))}
    net, meta, _ = load_model_from_checkpoint(ckpt)
    x = torch.from_numpy(np.random.default_rng(0).random((BATCH, 3, *meta.input_size), dtype=np.float32))
    ids = {k: torch.from_numpy(v) for k, v in example_ids(meta, BATCH).items()}
    with torch.inference_mode():
        lat = measure_latency(lambda b: net.eval()(b, **ids), x, iters=10)
    fp32 = result["variants"].get("fp32", {})
    result["torch_eager_fp32"] = {"p50_ms": lat["p50_ms"], "images_per_s": lat["images_per_s"],
                                  "rank1": fp32.get("rank1"), "mAP": fp32.get("mAP")}
    return result


def _float_nodes(path: Path) -> Optional[str]:
    """'<float> of <quantizable>' layers of an INT8 artifact, from its metadata."""
    import onnx

    if not path.is_file():
        return None
    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    quantizable = sum(n.op_type in ("Conv", "Gemm", "MatMul") for n in model.graph.node)
    floats = props.get("edge_reid.float_nodes")
    return None if floats is None else f"{floats} of {quantizable}"


def _commit() -> str:
    """The checkout's git commit at the start of a run (a row says which code measured it), or ''."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_results(out: Path) -> Dict[str, Any]:
    """The rows measured so far (``<out>/int8_models.json``), float-layer counts filled from the artifacts."""
    store = out / "int8_models.json"
    results: Dict[str, Any] = json.loads(store.read_text()) if store.is_file() else {}
    for name, row in results.items():
        for key, v in row.get("variants", {}).items():
            if key != "fp32" and not v.get("float_nodes"):
                v["float_nodes"] = _float_nodes(out / name / f"model_{key}.onnx")
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="int8_models.py", description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(PLAN), help="comma-separated, from: " + ", ".join(PLAN))
    parser.add_argument("--out", default="runs/int8_models")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime and torch threads")
    parser.add_argument("--machine", default="2-core CPU (Intel Xeon @ 2.50 GHz), shared")
    parser.add_argument("--calib-images", type=int, default=128, help="INT8 calibration crops (training split)")
    parser.add_argument("--eval-limit", type=int, default=200, help="synthetic query+gallery crops evaluated")
    parser.add_argument("--qat-start", choices=("ptq", "all"), default="all",
                        help="QAT from the post-training float set (ptq) or from every layer INT8, the float set "
                             "chosen again after fine-tuning (all)")
    parser.add_argument("--reuse-checkpoints", action="store_true",
                        help="use a model's newest cached checkpoint when none matches today's config (no retraining)")
    parser.add_argument("--train-only", action="store_true", help="only train (cache) the checkpoints")
    parser.add_argument("--redo", action="store_true", help="measure models already in the JSON again")
    parser.add_argument("--plot", default=None, help="also draw the accuracy-vs-latency plot to this PNG")
    parser.add_argument("--plot-only", action="store_true", help="only draw the plot from the JSON of --out")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in PLAN]
    if unknown:
        print(f"Unknown model {unknown[0]!r}; choose from {', '.join(PLAN)}.", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.plot_only:
        results = load_results(out)
        atomic_write_text(out / "int8_models.md", markdown(results, list(PLAN), args.machine))
        print(f"Plot: {plot(results, Path(args.plot or out / 'accuracy_vs_latency.png'), args.machine)}")
        return 0
    if args.train_only:
        for m in models:
            print(f"[{m}] checkpoint {checkpoint_for(m)}", flush=True)
        return 0
    import torch

    torch.set_num_threads(args.threads)  # the QAT fine-tuning and the eager timing too
    store = out / "int8_models.json"
    results = load_results(out)
    commit = _commit()  # the code this run loaded
    for m in models:
        if m in results and "error" not in results[m] and not args.redo:
            print(f"[{m}] already measured; skipped (--redo to measure again).", flush=True)
            continue
        try:
            row = build_model_row(m, out, args.threads, args.calib_images, args.eval_limit, qat_start=args.qat_start,
                                  reuse=args.reuse_checkpoints)
        except Exception as exc:  # one model failing must not lose the others' rows
            row = {"model": m, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        if "error" not in row:
            judge(row)
        results = load_results(out)  # rows another run wrote meanwhile are kept
        results[m] = {**row, "machine": args.machine, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      "commit": commit}
        atomic_write_json(store, results)
        atomic_write_text(out / "int8_models.md", markdown(results, models, args.machine))
        print(f"[{m}] done: {json.dumps(results[m].get('variants', results[m].get('error')))[:400]}", flush=True)
    atomic_write_text(out / "int8_models.md", markdown(results, list(PLAN), args.machine))
    if args.plot:
        print(f"Plot: {plot(results, Path(args.plot), args.machine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
