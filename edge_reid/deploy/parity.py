"""Parity of every artifact against its reference: cosines, max abs diff, Rank-1/mAP, gates.

Each build compares PyTorch vs ONNX Runtime FP32 (max abs diff and cosine), and FP16 / INT8
against FP32 (per-image cosine, min and mean), plus Rank-1/mAP on an evaluation split beside
FP32's when one is given. A build whose numbers fall under a gate fails loudly with them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_reid.errors import EdgeReidError

#: Default gates (see docs/deploy.md): FP32 vs torch, FP16 vs FP32, INT8 vs FP32.
DEFAULT_GATES: Dict[str, float] = {"fp32_max_abs": 1e-4, "fp16_min_cosine": 0.999, "int8_min_cosine": 0.99}


class ParityError(EdgeReidError):
    """An artifact fell under its parity gate."""


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row cosine similarity of two N x D arrays (normalises both, so raw features work too)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"embedding shapes differ: {a.shape} vs {b.shape}")
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)


@dataclass
class ParityResult:
    """How one artifact's embeddings compare with its reference's."""

    artifact: str
    precision: str
    reference: str
    images: int
    cosine_min: float
    cosine_mean: float
    max_abs_diff: float
    rank1: Optional[float] = None
    mAP: Optional[float] = None
    gate: Optional[str] = None
    threshold: Optional[float] = None
    passed: bool = True
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def compare(artifact: str, precision: str, reference: str, ref: np.ndarray, out: np.ndarray,
            gates: Optional[Dict[str, float]] = None) -> ParityResult:
    """Compare ``out`` with ``ref`` and apply the gate of ``precision`` (against torch for fp32)."""
    gates = {**DEFAULT_GATES, **(gates or {})}
    cos = cosines(ref, out)
    result = ParityResult(
        artifact=artifact, precision=precision, reference=reference, images=int(len(cos)),
        cosine_min=float(cos.min()), cosine_mean=float(cos.mean()),
        max_abs_diff=float(np.abs(np.asarray(ref, np.float64) - np.asarray(out, np.float64)).max()),
    )
    if precision == "fp32" and reference == "torch":
        result.gate, result.threshold = "fp32_max_abs", gates["fp32_max_abs"]
        result.passed = result.max_abs_diff <= result.threshold
    elif precision in ("fp16", "int8"):
        result.gate, result.threshold = f"{precision}_min_cosine", gates[f"{precision}_min_cosine"]
        result.passed = result.cosine_min >= result.threshold
    return result


def settle_rounding_flips(ref: np.ndarray, out: np.ndarray, threshold: float,
                          embed_float64: Callable[[np.ndarray], np.ndarray]) -> Tuple[np.ndarray, List[int]]:
    """The FP32 reference with rows where PyTorch's float32 rounding flipped a hard decision settled in float64.

    Models with hard thresholds (DCS-Attention's channel masks) are discontinuous: a channel whose
    score sits within float32 rounding of its threshold may be kept by one correct implementation
    and dropped by another. For every image whose ONNX output is further than ``threshold`` from
    PyTorch float32, ``embed_float64(indices)`` recomputes it in float64; where ONNX agrees with
    that within ``threshold`` (and PyTorch float32 does not), the row is replaced by the float64
    one. Returns the reference and the replaced rows; an export that disagrees with float64 too
    keeps its float32 row and still fails the gate.
    """
    ref = np.asarray(ref, dtype=np.float32)
    diff = np.abs(ref.astype(np.float64) - np.asarray(out, np.float64)).max(axis=1)
    suspects = np.flatnonzero(diff > threshold)
    if len(suspects) == 0:
        return ref, []
    exact = np.asarray(embed_float64(suspects), dtype=np.float64)
    settled = np.abs(exact - np.asarray(out, np.float64)[suspects]).max(axis=1) <= threshold
    fixed = ref.copy()
    fixed[suspects[settled]] = exact[settled].astype(np.float32)
    return fixed, [int(i) for i in suspects[settled]]


def enforce(results: Sequence[ParityResult]) -> None:
    """Raise :class:`ParityError` naming every artifact under its gate, with its numbers."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return
    parts = []
    for r in failed:
        value = r.max_abs_diff if r.gate == "fp32_max_abs" else r.cosine_min
        relation = "above" if r.gate == "fp32_max_abs" else "below"
        parts.append(f"{r.artifact} ({r.precision}) has {r.gate.replace('_', ' ') if r.gate else 'value'} "
                     f"{value:.6g}, {relation} the gate {r.threshold:g}")
    raise ParityError("Parity gate failed: " + "; ".join(parts) + ".")


def retrieval_metrics(query: np.ndarray, gallery: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                      q_camids: np.ndarray, g_camids: np.ndarray) -> Dict[str, float]:
    """Rank-1 and mAP in percent with ``edge_reid.evaluation.evaluate_rank`` (cosine distance)."""
    from edge_reid.evaluation import evaluate_rank

    distmat = 1.0 - np.asarray(query, np.float32) @ np.asarray(gallery, np.float32).T
    cmc, mAP, *_ = evaluate_rank(distmat, np.asarray(q_pids), np.asarray(g_pids),
                                 np.asarray(q_camids), np.asarray(g_camids))
    return {"rank1": float(cmc[0]) * 100.0, "mAP": float(mAP) * 100.0}


def format_table(rows: List[Dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table (Markdown pipes) of ``rows`` restricted to ``columns``."""

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(list(columns)), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in cells]
    return "\n".join(out)
