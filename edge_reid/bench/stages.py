"""The latency and accuracy stages of ``edge-reid bench``: run, print the table, write the files.

* latency - the grid of :mod:`edge_reid.bench.targets` -> ``latency.csv/json``;
* accuracy - each artifact's Rank-1/mAP joined with its latency and GMACs ->
  ``accuracy_vs_latency.csv/json/png`` (the Pareto plot).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from edge_reid.bench import report as R
from edge_reid.bench.artifacts import PRECISION_OF_KEY, ArtifactSet
from edge_reid.bench.latency import run_grid
from edge_reid.bench.pareto import join_accuracy
from edge_reid.bench.targets import latency_targets
from edge_reid.errors import InvalidInputError

LATENCY_COLUMNS = ["model", "backend", "precision", "batch", "p50_ms", "p90_ms", "p99_ms", "ms_per_image",
                   "images_per_s", "speedup_vs_eager_fp32"]
ACCURACY_COLUMNS = ["model", "backend", "precision", "ms_per_image", "speedup_vs_eager_fp32", "rank1", "mAP",
                    "gmacs", "rank1_per_gmac", "mAP_per_gmac", "pareto"]


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


def read_latency(path: Path) -> List[Dict[str, Any]]:
    """The rows of a previous latency stage (``latency.json``), for the accuracy stage alone."""
    if not path.is_file():
        raise InvalidInputError(f"No latency results at {path}; run the latency stage first (benchmarks/bench_latency.py).")
    return json.loads(path.read_text(encoding="utf-8"))["rows"]


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
