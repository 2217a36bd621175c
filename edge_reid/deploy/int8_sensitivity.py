"""Which layers INT8 keeps in float, chosen per model by measurement (``--int8-keep-float auto``).

The quantizable nodes (Conv, Gemm, MatMul) are grouped by kind and stage (op, depthwise or not,
output resolution). Calibration runs once (ranges are cached); each trial only rewrites the graph
with another float set and runs one ONNX Runtime session over the analysis crops (calibration
crops, plus the evaluation split when one is given for the mAP drop). The search:

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

import functools
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_reid.deploy.int8 import QUANTIZED_OP_TYPES, _conv_group, _with_static_input, prepare_for_quantization, write_qdq
from edge_reid.deploy.onnx_export import load_onnx, read_metadata
from edge_reid.deploy.parity import cosines, retrieval_metrics
from edge_reid.errors import InvalidInputError
from edge_reid.runtime.inputs import example_ids

log = logging.getLogger(__name__)

TABLE_NAME = "int8_sensitivity.csv"
MAX_ANALYSIS_CALIB = 64  # calibration crops used as analysis crops (the ranges use every crop)
MAX_LAYER_REFINE = 12  # layers of the float set tried back in INT8 one by one (the least sensitive groups')


@dataclass
class LayerGroup:
    """Quantizable nodes of one kind at one stage."""

    name: str
    nodes: List[str]


@dataclass
class Trial:
    """One quantization of the graph with ``float_nodes`` kept in float."""

    level: str  # all | group | prefix | layer | refine
    subject: str
    float_nodes: Tuple[str, ...]
    cos_min: float  # worst flavour
    cos_mean: float
    map_drop: Optional[float]
    passed: bool
    latency_ms: Optional[float] = None

    def row(self, quantizable: int) -> Dict[str, Any]:
        return {"level": self.level, "subject": self.subject, "float_layers": len(self.float_nodes),
                "int8_layers": quantizable - len(self.float_nodes), "cos_min": round(self.cos_min, 5),
                "cos_mean": round(self.cos_mean, 5),
                "map_drop": None if self.map_drop is None else round(self.map_drop, 2),
                "meets_gate": self.passed,
                "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3)}


@dataclass
class SensitivityResult:
    """The chosen float nodes, every trial, and where the table went."""

    float_nodes: List[str]
    groups: List[LayerGroup]
    trials: List[Trial] = field(default_factory=list)
    table: Optional[Path] = None
    seconds: float = 0.0
    artifacts: Dict[str, Path] = field(default_factory=dict)  # graphs written with the chosen set, if asked


def layer_groups(model: Any, input_size: Tuple[int, int]) -> List[LayerGroup]:
    """Quantizable nodes grouped by kind (op, depthwise, on a 1x1 map) and output resolution."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(_with_static_input(model, input_size))
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    groups: Dict[str, List[str]] = {}
    for node in inferred.graph.node:
        if node.op_type not in QUANTIZED_OP_TYPES:
            continue
        shape = shapes.get(node.output[0]) or []
        kind = node.op_type + ("-dw" if node.op_type == "Conv" and _conv_group(node) > 1 else "")
        where = "x".join(str(d) for d in shape[2:]) if len(shape) >= 3 else "vector"
        groups.setdefault(f"{kind}@{where}", []).append(node.name)
    return [LayerGroup(k, v) for k, v in groups.items()]


class SensitivityAnalysis:
    """Trials of float sets on one model; calibration once, one ORT session per trial and flavour."""

    def __init__(self, fp32_path: Union[str, Path], calibration: np.ndarray, work_dir: Union[str, Path],
                 eval_set: Any = None, min_cosine: float = 0.99, margin: float = 0.002, max_map_drop: float = 1.0,
                 flavours: Sequence[str] = ("trt", "cpu"), threads: int = 0, reference: Optional[Union[str, Path]] = None,
                 candidates: Optional[Sequence[str]] = None, writer: Optional[Callable[..., Path]] = None) -> None:
        """``reference``: the FP32 graph the cosines are measured to (default ``fp32_path``; QAT analyses its
        fine-tuned graph against the original); ``candidates``: the only nodes that may be quantized (the
        others always stay float); ``writer(prepared, out, flavour, float_nodes)``: writes a trial's graph
        (default :func:`write_qdq` with calibrated ranges; QAT fixes its learned steps)."""
        from edge_reid.runtime import load_embedder

        if calibration is None or len(calibration) == 0:
            raise InvalidInputError("The calibration set is empty; give a folder or split with images.")
        self.work = Path(work_dir)
        self.work.mkdir(parents=True, exist_ok=True)
        self.calibration = calibration
        self.flavours = tuple(flavours)
        self.threads = threads
        self.target = min_cosine + margin
        self.max_map_drop = max_map_drop
        self.eval_set = eval_set
        self.prepared = prepare_for_quantization(fp32_path, self.work / "prepared.onnx")
        meta, _ = read_metadata(load_onnx(fp32_path), source=f"ONNX model {fp32_path}")
        groups = layer_groups(load_onnx(self.prepared), meta.input_size)
        allowed = None if candidates is None else set(candidates)
        self.fixed_float = [] if allowed is None else [n for g in groups for n in g.nodes if n not in allowed]
        self.groups = [LayerGroup(g.name, [n for n in g.nodes if allowed is None or n in allowed]) for g in groups]
        self.groups = [g for g in self.groups if g.nodes]
        self.nodes = [n for g in self.groups for n in g.nodes]
        self.writer = writer
        step = max(1, len(calibration) // MAX_ANALYSIS_CALIB)
        parts = [calibration[::step][:MAX_ANALYSIS_CALIB]]
        if eval_set is not None:
            parts += [eval_set.query, eval_set.gallery]
        self.images = np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)
        # per-image ids for camera-aware / two-modality models (the evaluation images' own cameras)
        self.meta = meta
        self.ids = example_ids(meta, len(self.images))
        if eval_set is not None and "camera_ids" in self.ids:
            tail = np.concatenate([eval_set.q_camids, eval_set.g_camids]).astype(np.int64)
            self.ids["camera_ids"][len(self.images) - len(tail):] = tail
        self.reference = self._embed(load_embedder(reference or fp32_path, "onnxruntime", threads=threads))
        self.reference_map = self._map(self.reference)
        self._count = 0

    def _embed(self, embedder: Any) -> np.ndarray:
        out = np.concatenate([embedder.embed(self.images[i:i + 64], **{k: v[i:i + 64] for k, v in self.ids.items()})
                              for i in range(0, len(self.images), 64)])
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _map(self, emb: np.ndarray) -> Optional[float]:
        e = self.eval_set
        if e is None:
            return None
        start, nq = len(self.images) - len(e.query) - len(e.gallery), len(e.query)
        q, g = emb[start:start + nq], emb[start + nq:]
        # the same evaluation split in every trial: its "queries without a match" warning was
        # already printed once by the build, not once per trial
        metrics_log = logging.getLogger("edge_reid.evaluation.metrics")
        level = metrics_log.level
        metrics_log.setLevel(logging.ERROR)
        try:
            return retrieval_metrics(q, g, e.q_pids, e.g_pids, e.q_camids, e.g_camids)["mAP"]
        finally:
            metrics_log.setLevel(level)

    def quantized(self, float_nodes: Sequence[str], flavour: str) -> Path:
        """Write the ``flavour`` graph with ``float_nodes`` (and the fixed float nodes) in float; returns its path."""
        self._count += 1
        out, floats = self.work / f"trial-{self._count}-{flavour}.onnx", [*self.fixed_float, *float_nodes]
        if self.writer is not None:
            return self.writer(self.prepared, out, flavour, floats)
        return write_qdq(self.prepared, out, self.calibration, flavour, floats, self.work,
                         extras=example_ids(self.meta, len(self.calibration)))

    def trial(self, level: str, subject: str, float_nodes: Sequence[str], first_flavour_only: bool = False) -> Trial:
        """Quantize with ``float_nodes`` in float and measure every flavour (the worst one counts);
        ``first_flavour_only`` for the ranking trials (the decisions check every flavour)."""
        from edge_reid.runtime import load_embedder

        cos_min, cos_mean, drop = 1.0, 1.0, None
        for flavour in self.flavours[:1] if first_flavour_only else self.flavours:
            path = self.quantized(float_nodes, flavour)
            emb = self._embed(load_embedder(path, "onnxruntime", threads=self.threads))
            path.unlink()
            cos = cosines(self.reference, emb)
            cos_min, cos_mean = min(cos_min, float(cos.min())), min(cos_mean, float(cos.mean()))
            if self.reference_map is not None:
                d = self.reference_map - self._map(emb)
                drop = d if drop is None else max(drop, d)
        passed = cos_min >= self.target and (drop is None or drop <= self.max_map_drop)
        return Trial(level, subject, tuple(float_nodes), cos_min, cos_mean, drop, passed)

    def latency_ms(self, float_nodes: Sequence[str], batch: int = 8, iters: int = 10) -> float:
        """Median ONNX Runtime latency (CPU flavour, ``batch`` crops) with ``float_nodes`` in float."""
        from edge_reid.utils.timing import measure_latency
        from edge_reid.runtime import load_embedder

        path = self.quantized(float_nodes, "cpu")
        embedder = load_embedder(path, "onnxruntime", threads=self.threads)
        x = np.ascontiguousarray(np.resize(self.images, (batch, *self.images.shape[1:])))
        ms = float(measure_latency(functools.partial(embedder.embed, **example_ids(self.meta, batch)), x, iters)["p50_ms"])
        path.unlink()
        return ms


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
