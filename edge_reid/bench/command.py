"""``edge-reid bench``: params/FLOPs, latency per backend and precision, accuracy vs latency.

Three stages, each also a script in ``benchmarks/``:

* ``complexity`` - params (total, per part, on the inference path) and multiply-adds of every
  registry model beside the numbers the papers publish;
* ``latency`` - p50/p90/p99 and images/s per model x backend x precision x batch, with the ratio
  to PyTorch eager FP32 of the same model in the same run as the headline column;
* ``accuracy`` - each artifact's Rank-1/mAP joined with its latency, accuracy per GMAC, and the
  Pareto plot.

With no arguments it benchmarks the export pipeline's default model (VisNet trained once on
the synthetic set) on the embedded synthetic data in a few minutes on a 2-core CPU; ``--full``
runs the whole grid. Everything lands in ``--out`` (default ``runs/bench``) as CSV/JSON/PNG.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_reid.bench import report as R
from edge_reid.bench.complexity_table import PAPER_NUM_CLASSES, run_complexity
from edge_reid.bench.latency import Target, environment, run_grid
from edge_reid.bench.pareto import join_accuracy
from edge_reid.bench.serving import SERVING_BACKENDS, apply_serving_preset, serving_targets, use_fusion_impl
from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.metadata import ModelMeta

STAGES = ("complexity", "latency", "accuracy")
#: ONNX artifact keys of the export pipeline -> precision labels in the tables.
PRECISION_OF_KEY = {"fp32": "fp32", "fp16": "fp16", "int8_cpu": "int8-cpu", "int8_trt": "int8-trt",
                    "int8_qat_cpu": "int8-qat-cpu", "int8_qat_trt": "int8-qat-trt"}


LATENCY_COLUMNS = ["model", "backend", "precision", "batch", "p50_ms", "p90_ms", "p99_ms", "ms_per_image",
                   "images_per_s", "speedup_vs_eager_fp32"]
ACCURACY_COLUMNS = ["model", "backend", "precision", "ms_per_image", "speedup_vs_eager_fp32", "rank1", "mAP",
                    "gmacs", "rank1_per_gmac", "mAP_per_gmac", "pareto"]


# ============================================================================ artifacts


@dataclass
class ArtifactSet:
    """One model's deployable forms: the torch model, ONNX variants, engines, known accuracy."""

    meta: ModelMeta
    model: Any  # torch.nn.Module in eval mode
    onnx: Dict[str, Path] = field(default_factory=dict)  # pipeline keys: fp32, fp16, int8_trt, int8_cpu
    engines: Dict[str, Path] = field(default_factory=dict)
    accuracy: Dict[str, Dict[str, float]] = field(default_factory=dict)  # precision label -> rank1/mAP
    profile_max: int = 32
    trained: bool = True
    folder: Optional[Path] = None  # where its manifest.json is


def _find(path: str, folder: Path) -> Path:
    """A path written in a manifest, or the same file name in the manifest's folder (moved builds)."""
    p = Path(path)
    return p if p.is_file() else folder / p.name


def load_manifest(folder: Path, say: Callable[[str], None] = print) -> ArtifactSet:
    """Read a build folder written by ``edge-reid build`` (its ``manifest.json``)."""
    from edge_reid.models import build_model
    from edge_reid.models.checkpoint import load_model_from_checkpoint

    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise InvalidInputError(f"{folder} has no manifest.json; point --artifacts at an 'edge-reid build' output folder.")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    meta = ModelMeta.from_dict(manifest["meta"], source=f"manifest {path}")
    checkpoint = manifest.get("checkpoint")
    if checkpoint and Path(checkpoint).is_file():
        model = load_model_from_checkpoint(checkpoint)[0].eval()
    else:
        say(f"The checkpoint of {folder} is not here: torch rows time an untrained {meta.model} (same graph).")
        options = {**meta.model_options, "input_size": tuple(meta.input_size)}
        model = build_model(meta.model, num_classes=meta.num_ids, **options).eval()
    onnx = {k: _find(v, path.parent) for k, v in manifest.get("artifacts", {}).items()}
    engines = {k: _find(v, path.parent) for k, v in manifest.get("engines", {}).items()}
    verify_manifest_files(path, manifest.get("sha256"), [*onnx.values(), *engines.values()])
    by_name = {p.name: k for k, p in onnx.items()}
    accuracy = {}
    for row in manifest.get("parity", []):
        key = by_name.get(row.get("artifact"))
        if key and row.get("mAP") is not None:
            accuracy[PRECISION_OF_KEY.get(key, key)] = {"rank1": row["rank1"], "mAP": row["mAP"]}
    batch = manifest.get("config", {}).get("batch") or [1, 8, 32]
    return ArtifactSet(meta, model, onnx, engines, accuracy, int(batch[-1]), trained=bool(checkpoint),
                       folder=path.parent)


def verify_manifest_files(manifest: Path, hashes: Any, paths: Sequence[Path]) -> None:
    """Refuse a build folder whose files are not the ones its manifest describes (a mixed set:
    an interrupted rebuild, a file copied in from another build). Manifests older than the
    ``sha256`` table cannot be checked and are read as before."""
    from edge_reid.deploy.engine_meta import sha256_file

    if hashes is None:
        return
    for p in paths:
        if not p.is_file():
            raise InvalidInputError(f"{p} listed in {manifest} is missing; rebuild the folder with 'edge-reid build'.")
        if not isinstance(hashes, dict) or hashes.get(p.name) != sha256_file(p):
            raise InvalidInputError(f"{p} is not the file {manifest} describes (its SHA-256 differs): the folder mixes "
                                    "files of different builds; rebuild it with 'edge-reid build'.")


def build_artifacts(out: Path, model: Any, meta: ModelMeta, precisions: Sequence[str], calib: str,
                    calib_images: int, checkpoint: Optional[str], say: Callable[[str], None] = print) -> ArtifactSet:
    """Export ``model`` with :mod:`edge_reid.deploy` into ``out`` (FP32, FP16, INT8 flavours asked for).

    A ``manifest.json`` in the export pipeline's layout is written beside them, so the folder can
    be given back as ``--artifacts``; ``checkpoint`` None means untrained weights.
    """
    from edge_reid.deploy import int8
    from edge_reid.deploy.engine_meta import sha256_file
    from edge_reid.deploy.fp16 import to_fp16
    from edge_reid.deploy.onnx_export import OnnxExporter, load_onnx, save_onnx

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    onnx = {"fp32": OnnxExporter().export(model, meta, out / "model_fp32.onnx").path}
    if "fp16" in precisions:
        onnx["fp16"] = save_onnx(to_fp16(load_onnx(onnx["fp32"])), out / "model_fp16.onnx")
    flavours = [f for f in int8.FLAVOURS if f"int8-{f}" in precisions]
    if flavours:
        if calib == "random":
            data = int8.random_calibration(meta.input_size, min(calib_images, 64))
        else:
            name, _, split = calib.partition(":")
            data = int8.calibration_from_split(name, meta.input_size, split or "train", limit=calib_images)
        written = int8.Int8Quantizer().quantize(onnx["fp32"], data, {f: out / f"model_int8_{f}.onnx" for f in flavours})
        onnx.update({f"int8_{f}": p for f, p in written.items()})
    say(f"  exported {meta.model} ({', '.join(onnx)}) to {out} in {time.perf_counter() - t0:.1f} s")
    R.write_json(out / "manifest.json", {
        "format": "edge-reid-bench-artifacts", "meta": meta.to_dict(), "checkpoint": checkpoint,
        "artifacts": {k: str(v) for k, v in onnx.items()}, "engines": {}, "parity": [],
        "sha256": {p.name: sha256_file(p) for p in onnx.values()},
        "config": {"batch": [1, 8, 32], "calibration": calib, "calib_images": calib_images}})
    return ArtifactSet(meta, model, onnx, trained=checkpoint is not None, folder=out)


def resolve_main(args: argparse.Namespace, out: Path, say: Callable[[str], None] = print) -> ArtifactSet:
    """The benchmarked model: ``--artifacts``, else ``--checkpoint``, ``--model`` or the pipeline's default."""
    from edge_reid.models import build_model
    from edge_reid.models.checkpoint import load_model_from_checkpoint

    if args.artifacts:
        return load_manifest(Path(args.artifacts[0]), say)
    checkpoint: Optional[str] = args.checkpoint
    if args.checkpoint:
        model, meta, _ = load_model_from_checkpoint(args.checkpoint)
    elif args.model:
        size = args.input_size or (256, 128)
        say(f"No checkpoint: benchmarking an untrained '{args.model}' at {size[0]}x{size[1]} "
            "(latency is real; Rank-1/mAP of random weights are only a smoke test).")
        model = build_model(args.model, num_classes=PAPER_NUM_CLASSES, input_size=size)
        meta = model.meta("untrained")
    else:
        from edge_reid.deploy.default_model import default_checkpoint

        checkpoint = str(default_checkpoint(say))
        model, meta, _ = load_model_from_checkpoint(checkpoint)
    return build_artifacts(out / "artifacts" / meta.model, model.eval(), meta, args.precisions, args.calib,
                           args.calib_images, checkpoint, say)


def extra_models(args: argparse.Namespace, main: ArtifactSet, out: Path,
                 say: Callable[[str], None] = print) -> List[ArtifactSet]:
    """Untrained registry models timed beside the main one (``--models``; every model with ``--full``)."""
    from edge_reid.models import MODELS, build_model

    names = args.models if args.models is not None else (sorted(MODELS.names()) if args.full else [])
    size = tuple(main.meta.input_size)
    sets = [load_manifest(Path(folder), say) for folder in (args.artifacts or [])[1:]]  # more trained builds
    names = [n for n in names if n not in {s.meta.model for s in sets}]
    for name in [n for n in names if n != main.meta.model]:
        model = build_model(name, num_classes=PAPER_NUM_CLASSES, input_size=size).eval()
        sets.append(build_artifacts(out / "artifacts" / name, model, model.meta("untrained"), args.precisions,
                                    args.calib, args.calib_images, None, say))
    return sets


# ============================================================================ latency


def latency_targets(sets: Sequence[ArtifactSet], backends: Sequence[str], precisions: Sequence[str],
                    threads: int, notes: List[Dict[str, Any]]) -> List[Target]:
    """Every model x backend x precision this machine can run; what it cannot is added to ``notes``."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    targets: List[Target] = []

    def note(model: str, backend: str, precision: str, reason: str) -> None:
        notes.append({"model": model, "backend": backend, "precision": precision, "batch": None, "reason": reason})

    for s in sets:
        name = s.meta.model
        for backend in [b for b in ("torch-eager", "torch-compile") if b in backends]:
            for precision in [p for p in precisions if p in ("fp32", "fp16", "bf16")]:
                if precision != "fp32" and device == "cpu":
                    note(name, backend, precision, f"{precision.upper()} in PyTorch is measured on a GPU only (no CPU deployment path)")
                    continue
                targets.append(Target(name, backend, precision, "checkpoint" if s.trained else "untrained model",
                                      _torch_maker(s.model, device, precision, backend == "torch-compile"), device))
            if any(p.startswith("int8") for p in precisions):
                note(name, backend, "int8", "INT8 runs through the Q/DQ ONNX graphs (onnxruntime, tensorrt)")
        if "onnxruntime" in backends:
            for key, path in s.onnx.items():
                precision = PRECISION_OF_KEY.get(key, key)
                if precision in precisions:
                    targets.append(Target(name, "onnxruntime", precision, path.name,
                                          _embedder_maker(path, "onnxruntime", threads=threads), "cpu"))
        if "tensorrt" in backends:
            if s.engines:
                for key, path in s.engines.items():
                    targets.append(Target(name, "tensorrt", PRECISION_OF_KEY.get(key, key), path.name,
                                          _embedder_maker(path, "tensorrt"), "cuda"))
            else:
                from edge_reid.deploy.trt_builder import tensorrt_available

                why = tensorrt_available() or "no engines were built for these artifacts (run 'edge-reid build' on the GPU)"
                note(name, "tensorrt", "all", why)
    targets += serving_targets(sets, backends, precisions, device, notes)
    return targets


def _torch_maker(model: Any, device: str, precision: str, compiled: bool) -> Callable[[], Callable[[np.ndarray], Any]]:
    def make() -> Callable[[np.ndarray], Any]:
        import copy

        import torch

        from edge_reid.models.base import example_extra_inputs
        from edge_reid.runtime.torch_backend import torch_dtype

        dtype = torch_dtype(precision)
        net = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
        layout = torch.channels_last if device == "cuda" else torch.contiguous_format
        net = net.to(memory_format=layout)
        if compiled:  # max-autotune on a GPU (its own CUDA graphs included); the default mode on a CPU
            net = torch.compile(net, mode="max-autotune" if device == "cuda" else None)

        def run(x: np.ndarray) -> np.ndarray:
            extra = example_extra_inputs(model, len(x), device)  # camera ids of camera-aware models
            with torch.inference_mode():
                batch = torch.from_numpy(x).to(device=device, dtype=dtype).contiguous(memory_format=layout)
                return net(batch, **extra).float().cpu().numpy()

        return run

    return make


def _embedder_maker(path: Path, backend: str, **options: Any) -> Callable[[], Callable[[np.ndarray], Any]]:
    def make() -> Callable[[np.ndarray], Any]:
        from edge_reid.runtime import load_embedder
        from edge_reid.runtime.inputs import example_ids

        embedder = load_embedder(path, backend, **options)
        return lambda x: embedder.embed(x, **example_ids(embedder.meta, len(x)))  # ids where the model takes them

    return make


def run_latency(out: Path, sets: Sequence[ArtifactSet], args: argparse.Namespace, env: Dict[str, Any],
                say: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """The latency stage: the grid, printed table, ``latency.csv/json``."""
    batches = sorted(set(args.batches) | ({b for s in sets for b in (1, 8, 32, s.profile_max)} if args.full else set()))
    say(f"\n== Latency on {env['device']} (torch threads {env.get('torch_threads')}, ORT threads {env['ort_threads']}) ==")
    notes: List[Dict[str, Any]] = []
    targets = latency_targets(sets, args.backends, args.precisions, args.threads, notes)
    for n in notes:
        say(f"  not measured: {n['model']} {n['backend']} {n['precision']}: {n['reason']}")
    rows, skipped = run_grid(targets, batches, sets[0].meta.input_size, iters=args.iters, warmup=args.warmup,
                             max_seconds=args.max_seconds, say=say)
    notes += skipped
    for r in rows:
        r["input"] = "x".join(str(v) for v in next(s.meta.input_size for s in sets if s.meta.model == r["model"]))
    headers = {"speedup_vs_eager_fp32": "x vs eager FP32", "ms_per_image": "ms/image", "images_per_s": "img/s"}
    say(R.markdown_table(rows, LATENCY_COLUMNS, headers))
    say("Ratio = PyTorch eager FP32 p50 / this p50 (same model, same batch, same run); > 1 is faster.")
    R.dump_rows(rows, out, "latency", LATENCY_COLUMNS, {
        "environment": env, "not_measured": notes, "iters": args.iters, "warmup": args.warmup,
        "max_seconds": args.max_seconds, "artifact_dirs": [str(s.folder) for s in sets if s.folder]})
    return rows


# ============================================================================ accuracy


def evaluate_artifacts(s: ArtifactSet, dataset: str, limit: int, threads: int,
                       say: Callable[[str], None] = print) -> None:
    """Rank-1/mAP of every ONNX variant of ``s`` not already known, on ``dataset``'s query/gallery."""
    from edge_reid.deploy.parity import retrieval_metrics
    from edge_reid.deploy.pipeline import load_eval_set
    from edge_reid.runtime import load_embedder
    from edge_reid.runtime.inputs import example_ids

    missing = {k: p for k, p in s.onnx.items() if PRECISION_OF_KEY.get(k, k) not in s.accuracy}
    if not missing:
        return
    data = load_eval_set(dataset, s.meta.input_size, limit)
    nq = len(data.query)
    images = data.images
    ids = example_ids(s.meta, len(images))
    if "camera_ids" in ids:  # camera-aware models see each image's own camera
        ids["camera_ids"] = np.concatenate([data.q_camids, data.g_camids]).astype(np.int64)
    for key, path in missing.items():
        embedder = load_embedder(path, "onnxruntime", threads=threads)
        emb = np.concatenate([embedder.embed(images[i:i + 32], **{k: v[i:i + 32] for k, v in ids.items()})
                              for i in range(0, len(images), 32)])
        s.accuracy[PRECISION_OF_KEY.get(key, key)] = retrieval_metrics(
            emb[:nq], emb[nq:], data.q_pids, data.g_pids, data.q_camids, data.g_camids)
    say(f"  {s.meta.model}: " + ", ".join(f"{k} R1 {v['rank1']:.1f} mAP {v['mAP']:.1f}" for k, v in s.accuracy.items())
        + f" ({dataset}, {nq} queries, {len(data.gallery)} gallery)")


def run_accuracy(out: Path, sets: Sequence[ArtifactSet], latency_rows: Sequence[Dict[str, Any]],
                 args: argparse.Namespace, env: Dict[str, Any], say: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """The accuracy stage: evaluation, join with latency, accuracy per GMAC, Pareto plot."""
    from edge_reid.bench.complexity import complexity

    say(f"\n== Accuracy vs latency (batch {args.plot_batch}, {args.eval_dataset}) ==")
    accuracy: Dict[str, Dict[str, float]] = {}
    gmacs: Dict[str, float] = {}
    for s in sets:
        if s.trained:  # random weights give no meaningful accuracy: such models stay off the plot
            evaluate_artifacts(s, args.eval_dataset, args.eval_limit, args.threads, say)
            accuracy.update({f"{s.meta.model}:{k}": v for k, v in s.accuracy.items()})
        else:
            say(f"  {s.meta.model}: untrained, no accuracy (latency only)")
        gmacs[s.meta.model] = complexity(s.model, s.meta.input_size).gmacs
    rows = join_accuracy(latency_rows, accuracy, gmacs, args.plot_batch)
    headers = {"ms_per_image": "ms/image", "speedup_vs_eager_fp32": "x vs eager FP32", "rank1": "R1 (%)",
               "mAP": "mAP (%)", "gmacs": "GMACs", "rank1_per_gmac": "R1/GMAC", "mAP_per_gmac": "mAP/GMAC"}
    say(R.markdown_table(rows, ACCURACY_COLUMNS, headers))
    say(f"GMACs at {'x'.join(map(str, sets[0].meta.input_size))} (the benchmarked input); "
        "R1/GMAC and mAP/GMAC follow the VisNet paper's Acc/GFLOP.")
    R.dump_rows(rows, out, "accuracy_vs_latency", ACCURACY_COLUMNS,
                {"environment": env, "batch": args.plot_batch, "eval_dataset": args.eval_dataset,
                 "eval_limit": args.eval_limit})
    plot = R.plot_accuracy_vs_latency(out / "accuracy_vs_latency.png", rows, env["device"], args.plot_batch)
    say(f"Plot: {plot}")
    return rows


# ============================================================================ command line


def _size(text: str) -> Tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 256x128; got '{text}'") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive; got '{text}'")
    return h, w


def _ints(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; got '{text}'") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers; got '{text}'")
    return values


def _names(text: str) -> List[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edge-reid bench`` (and of the three scripts in ``benchmarks/``)."""
    parser.add_argument("--out", default="runs/bench", help="output folder for CSV/JSON/PNG (default runs/bench)")
    parser.add_argument("--full", action="store_true",
                        help="the whole grid: every registry model, batches 1,8,32 and the profile max, "
                             "every precision, more iterations")
    parser.add_argument("--stages", type=_names, default=None,
                        help="comma list of complexity,latency,accuracy (default all; --serving: latency)")
    parser.add_argument("--serving", action="store_true",
                        help="the serving grid: GPU - eager, torch.compile max-autotune, CUDA graphs, AOTInductor "
                             "packages in fp32/fp16/bf16 at batch 1,8,32,128, VisNet (fast fusion) beside ResNet50; "
                             "CPU - the AOTInductor package beside ONNX Runtime FP32/INT8 and eager PyTorch")
    parser.add_argument("--fusion-impl", choices=("reference", "fast"), default=None,
                        help="run VisNet's fusion in this form (same weights; --serving on a GPU: fast)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--artifacts", action="append",
                     help="an 'edge-reid build' output folder (reads its manifest.json); repeat it to put several "
                          "trained models on one table and plot")
    src.add_argument("--checkpoint", help="an edge-reid checkpoint to export and benchmark")
    src.add_argument("--model", help="a registry model to benchmark untrained (latency only is meaningful)")
    parser.add_argument("--input-size", type=_size, default=None, help="HxW for --model (default 256x128)")
    parser.add_argument("--models", type=_names, default=None,
                        help="extra registry models timed untrained beside the main one (default: none; all with --full)")
    parser.add_argument("--batches", type=_ints, default=None, help="batch sizes (default 1,8; --full adds 32 and the profile max)")
    parser.add_argument("--backends", type=_names, default=None,
                        help="torch-eager,torch-compile,torch-cudagraph,aoti,onnxruntime,tensorrt "
                             "(default: torch-eager,onnxruntime,tensorrt; --full adds torch-compile)")
    parser.add_argument("--precisions", type=_names, default=None,
                        help="fp32,fp16,bf16,int8-cpu,int8-trt (default fp32,fp16,int8-cpu; --full adds int8-trt)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per point (default 10; --full 50)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 2; --full 5)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="cap on timed seconds per point, at least 3 calls (default 5; --full 60)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of every backend, the same for all so ratios are fair (default 1: "
                             "on a shared CPU more threads spin against other processes; 0 = each library's default)")
    parser.add_argument("--plot-batch", type=int, default=1, help="batch whose latency goes on the plot (default 1)")
    parser.add_argument("--eval-dataset", default="synthetic", help="dataset for Rank-1/mAP (default synthetic)")
    parser.add_argument("--eval-limit", type=int, default=None, help="query+gallery images evaluated (default 200; --full 400)")
    parser.add_argument("--calib", default="synthetic:train", help="INT8 calibration: dataset:split or 'random' (smoke tests)")
    parser.add_argument("--calib-images", type=int, default=None, help="calibration crops (default 64; --full 256)")
    parser.add_argument("--complexity-models", type=_names, default=None, help="models for the complexity table (default: all)")
    parser.add_argument("--complexity-input", type=_size, default=(256, 128), help="HxW for params/MACs (default 256x128)")
    parser.add_argument("--num-classes", type=int, default=PAPER_NUM_CLASSES,
                        help=f"classifier size for params (default {PAPER_NUM_CLASSES}, Market-1501)")


def _apply_defaults(args: argparse.Namespace) -> None:
    """Fill the quick / --full defaults and check the choices."""
    full = args.full
    if getattr(args, "serving", False):
        import torch

        apply_serving_preset(args, torch.cuda.is_available())
    args.stages = args.stages or list(STAGES)
    args.batches = args.batches or [1, 8]
    # torch.compile takes minutes per batch shape on a 2-core CPU: in the quick default only with --backends
    args.backends = args.backends or (["torch-eager", "torch-compile", "onnxruntime", "tensorrt"] if full
                                      else ["torch-eager", "onnxruntime", "tensorrt"])
    args.precisions = args.precisions or (["fp32", "fp16", "int8-cpu", "int8-trt", "int8-qat-cpu", "int8-qat-trt"] if full
                                          else ["fp32", "fp16", "int8-cpu", "int8-qat-cpu"])
    args.iters = args.iters or (50 if full else 10)
    args.warmup = args.warmup if args.warmup is not None else (5 if full else 2)
    args.max_seconds = args.max_seconds if args.max_seconds is not None else (60.0 if full else 5.0)
    args.eval_limit = args.eval_limit or (400 if full else 200)
    args.calib_images = args.calib_images or (256 if full else 64)
    for option, values, known in (("--stages", args.stages, STAGES),
                                  ("--backends", args.backends, ("torch-eager", "torch-compile", "onnxruntime", "tensorrt")
                                   + SERVING_BACKENDS),
                                  ("--precisions", args.precisions, tuple(PRECISION_OF_KEY.values()) + ("bf16",))):
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InvalidInputError(f"Unknown {option} value(s) {unknown}; choose from {', '.join(known)}.")
    if "fp32" not in args.precisions:
        args.precisions = ["fp32"] + list(args.precisions)  # every variant derives from FP32; the baseline needs it
    if "accuracy" in args.stages and args.plot_batch not in args.batches:
        args.batches = sorted(set(args.batches) | {args.plot_batch})


def run(args: argparse.Namespace) -> int:
    """Run the requested stages; returns 0 (user errors raise :class:`EdgeReidError`)."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    _apply_defaults(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    env = environment(ort_threads=args.threads)
    say = print
    say(f"edge-reid bench on {env['device']}; results in {out}")
    if "complexity" in args.stages:
        run_complexity(out, args.complexity_models, args.complexity_input, args.num_classes, say)
    if "latency" not in args.stages and "accuracy" not in args.stages:
        return 0
    say("\n== Artifacts ==")
    previous = out / "latency.json"
    if "latency" not in args.stages and not previous.is_file():
        say(f"No latency results in {out}: running the latency stage first.")
        args.stages = ["latency"] + list(args.stages)
    if "latency" not in args.stages and not (args.artifacts or args.checkpoint or args.model) and previous.is_file():
        # the accuracy stage alone: reuse the artifacts the latency stage timed
        dirs = json.loads(previous.read_text(encoding="utf-8")).get("artifact_dirs", [])
        sets = [load_manifest(Path(d), say) for d in dirs]
    else:
        sets = [resolve_main(args, out, say)]
        sets += extra_models(args, sets[0], out, say)
    if getattr(args, "fusion_impl", None):
        for s in sets:
            if use_fusion_impl(s.model, args.fusion_impl):
                say(f"  {s.meta.model}: fusion_impl={args.fusion_impl}")
    latency_rows: List[Dict[str, Any]]
    if "latency" in args.stages:
        latency_rows = run_latency(out, sets, args, env, say)
    else:
        latency_rows = _read_latency(out / "latency.json")
    if "accuracy" in args.stages:
        run_accuracy(out, sets, latency_rows, args, env, say)
    say(f"\nResults: {', '.join(sorted(p.name for p in out.iterdir() if p.suffix in ('.csv', '.json', '.png')))} in {out}")
    return 0


def _read_latency(path: Path) -> List[Dict[str, Any]]:
    if not path.is_file():
        raise InvalidInputError(f"No latency results at {path}; run the latency stage first (benchmarks/bench_latency.py).")
    return json.loads(path.read_text(encoding="utf-8"))["rows"]


def script_main(stages: Sequence[str], argv: Optional[Sequence[str]] = None, prog: str = "bench") -> int:
    """Entry point of a ``benchmarks/`` script: the ``bench`` options with the stages fixed."""
    from edge_reid.cli import run_guarded

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.stages = list(stages)
    return run_guarded(lambda: run(args), prog=prog)


__all__ = ["EdgeReidError", "add_arguments", "run", "script_main"]
