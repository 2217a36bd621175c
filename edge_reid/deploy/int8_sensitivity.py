"""Which layers INT8 keeps in float, chosen per model by measurement (``--int8-keep-float auto``).

The quantizable nodes (Conv, Gemm, MatMul) are grouped by kind and stage (op, depthwise or not,
output resolution). Calibration runs once (ranges are cached); each trial only rewrites the graph
with another float set and runs one ONNX Runtime session over the analysis crops (calibration
crops, plus the evaluation split when one is given for the mAP drop; the groups and the trials are
:mod:`edge_reid.deploy.int8_trials`). The search:

1. everything quantized: if it meets the gate, nothing stays float;
2. each group alone quantized (the rest float): its sensitivity (min cosine to FP32, mAP drop);
3. the most sensitive groups kept float, the smallest such prefix that meets the gate (binary search);
4. refined per layer: up to ``MAX_LAYER_REFINE`` layers of the float groups (from the least
   sensitive group on), least sensitive first, go back to INT8 while the gate still holds (binary
   search on the prefix).

The ranking trials (2, and the per-layer scores of 4) measure the first flavour only (``trt``, the
stricter symmetric one); every decision (1, 3, 4) measures every flavour.

The gate is the build's (min cosine to FP32 over the analysis crops, with a small margin, in every
flavour; mAP drop at most ``max_map_drop`` points when an evaluation split is given). The speed
cost of each float group kept is measured on ONNX Runtime (the CPU flavour, batch 8). The table
of every trial is written beside the artifacts (``int8_sensitivity.csv``).
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

# the trials live in int8_trials; their names stay importable from here
from edge_reid.deploy.int8_trials import MAX_ANALYSIS_CALIB, LayerGroup, SensitivityAnalysis, Trial, layer_groups

log = logging.getLogger(__name__)

TABLE_NAME = "int8_sensitivity.csv"
MAX_LAYER_REFINE = 12  # layers of the float set tried back in INT8 one by one (the least sensitive groups')


@dataclass
class SensitivityResult:
    """The chosen float nodes, every trial, and where the table went."""

    float_nodes: List[str]
    groups: List[LayerGroup]
    trials: List[Trial] = field(default_factory=list)
    table: Optional[Path] = None
    seconds: float = 0.0
    artifacts: Dict[str, Path] = field(default_factory=dict)  # graphs written with the chosen set, if asked


def _smallest_passing_prefix(items: Sequence[Any], passes: Callable[[int], bool]) -> int:
    """Smallest k in [1, len(items)] with passes(k) (assumed monotone); len(items) when none is smaller."""
    lo, hi = 1, len(items)
    while lo < hi:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def choose_float_nodes(analysis: SensitivityAnalysis, measure_speed: bool = True,
                       say: Callable[[str], None] = print) -> SensitivityResult:
    """Run the search (module docstring) on ``analysis``; the result's float nodes meet the gate."""
    t0 = time.perf_counter()
    result = SensitivityResult([], analysis.groups)
    run = lambda *a: result.trials.append(analysis.trial(*a)) or result.trials[-1]  # noqa: E731
    everything = run("all", "every layer INT8", [])
    if everything.passed or not analysis.nodes:
        result.seconds = time.perf_counter() - t0
        return result
    everything_set = set(analysis.nodes)
    alone = {g.name: run("group", g.name, [n for n in analysis.nodes if n not in set(g.nodes)], True)
             for g in analysis.groups}
    ranked = sorted(analysis.groups, key=lambda g: (alone[g.name].cos_min, -(alone[g.name].map_drop or 0.0)))
    prefix_trials: Dict[int, Trial] = {}

    def prefix_passes(k: int) -> bool:
        nodes = [n for g in ranked[:k] for n in g.nodes]
        prefix_trials[k] = run("prefix", " + ".join(g.name for g in ranked[:k]), nodes)
        return prefix_trials[k].passed

    k = _smallest_passing_prefix(ranked, prefix_passes)
    chosen_groups = ranked[:k]
    floats = [n for g in chosen_groups for n in g.nodes]
    if k not in prefix_trials:
        prefix_passes(k)
    if not prefix_trials[k].passed:  # not monotone after all: every layer in float is the safe answer
        floats = list(everything_set)
    # refine: layers of the float groups (at most MAX_LAYER_REFINE, from the least sensitive group on),
    # least sensitive first, back to INT8 while the gate holds
    if len(floats) > 1 and prefix_trials[k].passed:
        cand = [n for g in reversed(chosen_groups) for n in g.nodes][:MAX_LAYER_REFINE]
        score = {n: run("layer", n, [m for m in floats if m != n], True).cos_min for n in cand}
        cand.sort(key=lambda n: -score[n])
        back = lambda j: run("refine", f"{j} of {len(cand)} layers back to INT8",  # noqa: E731
                             [n for n in floats if n not in cand[:j]]).passed
        best, lo, hi = 0, 1, len(cand) - (len(cand) == len(floats))
        while lo <= hi:  # largest j that still passes
            mid = (lo + hi) // 2
            if back(mid):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        floats = [n for n in floats if n not in cand[:best]]
    result.float_nodes = [n for n in analysis.nodes if n in set(floats)]
    if measure_speed:
        base = analysis.latency_ms([])
        everything.latency_ms = base
        for g in chosen_groups:
            keep = [n for n in g.nodes if n in set(result.float_nodes)]
            if keep:
                cost = analysis.latency_ms(keep) - base
                alone[g.name].latency_ms = cost
                say(f"  keeping {g.name} ({len(keep)} layer(s)) in float costs {cost:+.2f} ms at batch 8.")
    result.seconds = time.perf_counter() - t0
    return result


def write_table(result: SensitivityResult, path: Union[str, Path], quantizable: int) -> Path:
    """The per-trial sensitivity table as CSV (``latency_ms``: the float group's speed cost, or the
    all-INT8 latency in the ``all`` row)."""
    from edge_reid.utils.atomic import atomic_write_csv as write_csv

    rows = [t.row(quantizable) for t in result.trials]
    chosen = set(result.float_nodes)
    members = {g.name: g.nodes for g in result.groups}
    for r, t in zip(rows, result.trials):  # group / layer rows: is it (partly) in the chosen float set?
        inside = members.get(t.subject, [t.subject]) if t.level in ("group", "layer") else []
        r["kept_float"] = sum(n in chosen for n in inside) if inside else ""
    result.table = write_csv(path, rows)
    return result.table


def auto_float_nodes(fp32_path: Union[str, Path], calibration: np.ndarray, out_dir: Union[str, Path],
                     eval_set: Any = None, min_cosine: float = 0.99, threads: int = 0,
                     say: Callable[[str], None] = print) -> SensitivityResult:
    """Analyse ``fp32_path``, choose its float nodes and write ``<out_dir>/int8_sensitivity.csv``."""
    with tempfile.TemporaryDirectory(prefix="edge-reid-sens.") as tmp:
        analysis = SensitivityAnalysis(fp32_path, calibration, tmp, eval_set, min_cosine, threads=threads)
        say(f"INT8 sensitivity: {len(analysis.nodes)} quantizable layers in {len(analysis.groups)} groups, "
            f"{len(analysis.images)} analysis crops.")
        result = choose_float_nodes(analysis, say=say)
        write_table(result, Path(out_dir) / TABLE_NAME, len(analysis.nodes))
    say(f"INT8 sensitivity: {len(result.float_nodes)} layer(s) kept in float after {len(result.trials)} trials "
        f"({result.seconds:.0f} s); table {result.table}.")
    return result


__all__ = ["MAX_ANALYSIS_CALIB", "MAX_LAYER_REFINE", "TABLE_NAME", "LayerGroup", "SensitivityAnalysis",
           "SensitivityResult", "Trial", "auto_float_nodes", "choose_float_nodes", "layer_groups", "write_table"]
