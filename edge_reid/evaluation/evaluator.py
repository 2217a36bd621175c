"""One call from a model to ReID metrics: embed query and gallery, rank, score.

The training engine builds an :class:`Evaluator` once and calls ``run(model)`` every N
epochs; ``edge-reid eval`` uses the same object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

from edge_reid.evaluation.features import compute_distance_matrix, extract_features
from edge_reid.evaluation.metrics import evaluate_rank_counted, format_metrics_table, metrics_percent
from edge_reid.evaluation.rerank import re_ranking


@dataclass
class EvalResult:
    """Metrics in percent, the CMC (fractions) and the ranked distance matrix with its labels.

    Rows / columns of ``distmat`` follow ``q_indices`` / ``g_indices`` (positions in the
    record lists), which ``query_records`` / ``gallery_records`` already apply. Unreadable images
    are dropped (counted in ``*_unreadable``), never replaced; queries without a match from
    another camera are ranked but left out of the metrics (``query_unmatched``).
    """

    metrics: Dict[str, float]
    cmc: np.ndarray
    distmat: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray
    q_indices: np.ndarray
    g_indices: np.ndarray
    query_records: List[Any] = field(default_factory=list)
    gallery_records: List[Any] = field(default_factory=list)
    query_unreadable: int = 0
    gallery_unreadable: int = 0
    query_unmatched: int = 0

    @property
    def num_evaluated(self) -> int:
        """Queries the metrics average over (readable, with a match)."""
        return int(self.distmat.shape[0]) - self.query_unmatched

    def counts(self) -> Dict[str, int]:
        """What was evaluated and what was skipped, for reports (``metrics.json``)."""
        return {
            "num_query": self.num_evaluated,
            "num_query_total": int(self.distmat.shape[0]) + self.query_unreadable,
            "num_query_unreadable": self.query_unreadable,
            "num_query_no_match": self.query_unmatched,
            "num_gallery": int(self.distmat.shape[1]),
            "num_gallery_unreadable": self.gallery_unreadable,
        }

    def skipped_line(self) -> str:
        """One sentence: queries evaluated out of all, and why the others were skipped."""
        c = self.counts()
        return (f"Evaluated {c['num_query']} of {c['num_query_total']} queries against {c['num_gallery']} gallery "
                f"images; skipped {c['num_query_unreadable']} unreadable and {c['num_query_no_match']} without a "
                f"match from another camera, and {c['num_gallery_unreadable']} unreadable gallery image(s).")

    def table(self, title: Optional[str] = None) -> str:
        """Rank-1/5/10/20, mAP and mINP as a printable percentage table."""
        return format_metrics_table(self.metrics, title=title)


class Evaluator:
    """Evaluates a model on fixed query / gallery loaders (single-modality protocol)."""

    def __init__(
        self,
        query_loader: Iterable[Any],
        gallery_loader: Iterable[Any],
        query_records: Sequence[Any],
        gallery_records: Sequence[Any],
        flip: bool = False,
        rerank: bool = False,
        metric: str = "euclidean",
        max_rank: int = 50,
        device: Optional[Any] = None,
        single_gallery_shot: bool = False,
    ) -> None:
        self.query_loader = query_loader
        self.gallery_loader = gallery_loader
        self.query_records = list(query_records)
        self.gallery_records = list(gallery_records)
        self.flip = flip
        self.rerank = rerank
        self.metric = metric
        self.max_rank = max_rank
        self.device = device
        self.single_gallery_shot = single_gallery_shot  # classic CUHK03 CMC

    def run(self, model: Any) -> EvalResult:
        """Embed both sets with ``model``, build distances (re-ranked if asked) and score them."""
        qf, q_pids, q_camids, q_idx = extract_features(model, self.query_loader, self.flip, self.device)
        gf, g_pids, g_camids, g_idx = extract_features(model, self.gallery_loader, self.flip, self.device)
        if self.rerank:
            # re-ranking is defined on squared Euclidean distances whatever the metric
            distmat = re_ranking(
                compute_distance_matrix(qf, gf, "euclidean"),
                compute_distance_matrix(qf, qf, "euclidean"),
                compute_distance_matrix(gf, gf, "euclidean"),
            )
        else:
            distmat = compute_distance_matrix(qf, gf, self.metric)
        cmc, mAP, mINP, num_valid = evaluate_rank_counted(
            distmat, q_pids, g_pids, q_camids, g_camids, max_rank=self.max_rank,
            cuhk03_single_gallery_shot=self.single_gallery_shot,
        )
        return EvalResult(
            metrics=metrics_percent(cmc, mAP, mINP),
            cmc=cmc,
            distmat=distmat,
            q_pids=q_pids,
            g_pids=g_pids,
            q_camids=q_camids,
            g_camids=g_camids,
            q_indices=q_idx,
            g_indices=g_idx,
            query_records=_pick(self.query_records, q_idx),
            gallery_records=_pick(self.gallery_records, g_idx),
            query_unreadable=_expected(self.query_loader, self.query_records, q_idx) - len(q_idx),
            gallery_unreadable=_expected(self.gallery_loader, self.gallery_records, g_idx) - len(g_idx),
            query_unmatched=int(distmat.shape[0]) - num_valid,
        )


def _expected(loader: Any, records: List[Any], indices: np.ndarray) -> int:
    """How many images the split holds: its records, else the loader's dataset, else those embedded."""
    if records:
        return len(records)
    dataset = getattr(loader, "dataset", None)
    try:
        return len(dataset) if dataset is not None else len(indices)
    except TypeError:
        return len(indices)


def _pick(records: List[Any], indices: np.ndarray) -> List[Any]:
    """The records at ``indices`` (empty when no records were given)."""
    if not records:
        return []
    return [records[int(i)] for i in indices]
