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

Modules: :mod:`~edge_reid.bench.options` (flags and presets), :mod:`~edge_reid.bench.artifacts`
(what is timed), :mod:`~edge_reid.bench.targets` (the latency grid's rows),
:mod:`~edge_reid.bench.stages` (the latency and accuracy stages); this one runs them in order.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from edge_reid.bench.artifacts import ArtifactSet, extra_models, load_manifest, resolve_main
from edge_reid.bench.complexity_table import run_complexity
from edge_reid.bench.latency import environment
from edge_reid.bench.options import add_arguments
from edge_reid.bench.options import apply_defaults as _apply_defaults
from edge_reid.bench.serving import use_fusion_impl
from edge_reid.bench.stages import read_latency, run_accuracy, run_latency
from edge_reid.errors import EdgeReidError


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
        latency_rows = read_latency(out / "latency.json")
    if "accuracy" in args.stages:
        run_accuracy(out, sets, latency_rows, args, env, say)
    say(f"\nResults: {', '.join(sorted(p.name for p in out.iterdir() if p.suffix in ('.csv', '.json', '.png')))} in {out}")
    return 0


def script_main(stages: Sequence[str], argv: Optional[Sequence[str]] = None, prog: str = "bench") -> int:
    """Entry point of a ``benchmarks/`` script: the ``bench`` options with the stages fixed."""
    from edge_reid.cli import run_guarded

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.stages = list(stages)
    return run_guarded(lambda: run(args), prog=prog)


#: Names other code imports from here (tests, scripts): kept where they were before the split.
__all__ = ["ArtifactSet", "EdgeReidError", "add_arguments", "load_manifest", "run", "script_main"]
