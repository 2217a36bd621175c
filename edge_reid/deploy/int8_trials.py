"""The trials of the INT8 sensitivity search (:mod:`edge_reid.deploy.int8_sensitivity`).

The quantizable nodes (Conv, Gemm, MatMul) grouped by kind and stage (:func:`layer_groups`), and
:class:`SensitivityAnalysis`: calibration once, then one trial per float set, which writes the Q/DQ
graph with that set kept in float and measures it against FP32 over the analysis crops (min
cosine in every flavour, mAP drop when an evaluation split is given, ONNX Runtime latency).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_reid.deploy.int8 import QUANTIZED_OP_TYPES, _conv_group, _with_static_input, prepare_for_quantization, write_qdq
from edge_reid.deploy.onnx_export import load_onnx, read_metadata
from edge_reid.deploy.parity import cosines, retrieval_metrics
from edge_reid.errors import InvalidInputError
from edge_reid.runtime.inputs import example_ids

MAX_ANALYSIS_CALIB = 64  # calibration crops used as analysis crops (the ranges use every crop)


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


__all__ = ["MAX_ANALYSIS_CALIB", "LayerGroup", "SensitivityAnalysis", "Trial", "layer_groups"]
