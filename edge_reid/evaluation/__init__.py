"""Evaluation: CMC / mAP / mINP, k-reciprocal re-ranking, feature extraction, ranked lists.

Importing this package needs numpy only; torch is imported inside feature extraction and
OpenCV inside the ranked-list pictures.
"""

from edge_reid.evaluation.evaluator import EvalResult, Evaluator
from edge_reid.evaluation.features import compute_distance_matrix, extract_features
from edge_reid.evaluation.metrics import evaluate_rank, format_metrics_table, metrics_percent, metrics_table
from edge_reid.evaluation.rerank import re_ranking
from edge_reid.evaluation.visualize import save_ranked_lists

__all__ = [
    "EvalResult",
    "Evaluator",
    "compute_distance_matrix",
    "evaluate_rank",
    "extract_features",
    "format_metrics_table",
    "metrics_percent",
    "metrics_table",
    "re_ranking",
    "save_ranked_lists",
]
