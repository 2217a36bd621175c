"""Accuracy against latency: the Pareto front, and the join of latency rows with accuracy.

A point (latency, accuracy) is on the front when no other point is at least as fast and at
least as accurate and strictly better in one of the two. Identical points do not dominate each
other, so ties are all kept. Accuracy per GFLOP follows the VisNet paper's Table II
(accuracy points divided by the model's multiply-adds in G, which the paper calls GFLOPs).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from edge_reid.errors import InvalidInputError


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the non-dominated ``(latency, accuracy)`` points (lower latency, higher accuracy win),
    ordered by latency (then accuracy, descending)."""
    front = []
    for i, (lat_i, acc_i) in enumerate(points):
        dominated = any(
            lat_j <= lat_i and acc_j >= acc_i and (lat_j < lat_i or acc_j > acc_i)
            for j, (lat_j, acc_j) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda k: (points[k][0], -points[k][1]))


def accuracy_key(backend: str, precision: str) -> str:
    """Which accuracy measurement a latency row shares: the torch backends run the FP32 weights."""
    return "fp32" if backend.startswith("torch") else precision


def join_accuracy(latency_rows: Sequence[Mapping[str, Any]], accuracy: Mapping[str, Mapping[str, Any]],
                  gmacs: Mapping[str, float], batch: int) -> List[Dict[str, Any]]:
    """One row per model x backend x precision at ``batch``: latency, Rank-1/mAP and accuracy per GMAC.

    ``accuracy`` maps ``"<model>:<precision>"`` (precision as in the latency rows: fp32, fp16,
    int8-cpu, int8-trt) to ``{"rank1": %, "mAP": %}``; ``gmacs`` maps model -> GMACs per image.
    Rows without an accuracy measurement keep ``None`` there and are left off the plot.
    """
    rows = [r for r in latency_rows if int(r["batch"]) == int(batch)]
    if not rows:
        measured = sorted({int(r["batch"]) for r in latency_rows})
        raise InvalidInputError(f"No latency rows at batch {batch}; measured batches: {measured}.")
    out = []
    for r in rows:
        acc = accuracy.get(f"{r['model']}:{accuracy_key(r['backend'], r['precision'])}", {})
        g = gmacs.get(r["model"])
        rank1, mAP = acc.get("rank1"), acc.get("mAP")
        out.append({
            "model": r["model"], "backend": r["backend"], "precision": r["precision"], "batch": int(r["batch"]),
            "ms_per_image": r["p50_ms"] / int(r["batch"]), "p50_ms": r["p50_ms"], "images_per_s": r["images_per_s"],
            "speedup_vs_eager_fp32": r.get("speedup_vs_eager_fp32"),
            "rank1": rank1, "mAP": mAP, "gmacs": g,
            "rank1_per_gmac": per_gmac(rank1, g), "mAP_per_gmac": per_gmac(mAP, g),
        })
    mark_front(out)
    return out


def per_gmac(accuracy: Optional[float], gmacs: Optional[float]) -> Optional[float]:
    """Accuracy points per G multiply-adds (the paper's 'Acc/GFLOP'); None when either is unknown."""
    if accuracy is None or not gmacs:
        return None
    return float(accuracy) / float(gmacs)


def mark_front(rows: List[Dict[str, Any]], x: str = "ms_per_image", y: str = "mAP") -> None:
    """Set ``pareto`` True/False on rows with an accuracy (None where ``y`` is unknown)."""
    known = [i for i, r in enumerate(rows) if r.get(y) is not None]
    front = {known[k] for k in pareto_front([(rows[i][x], rows[i][y]) for i in known])}
    for i, r in enumerate(rows):
        r["pareto"] = (i in front) if r.get(y) is not None else None
