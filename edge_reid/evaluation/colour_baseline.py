"""A hand-made baseline: Rank-1 of a raw colour-histogram nearest neighbour.

Used as a difficulty check of the synthetic generator: if colour alone found the right person
the set would teach nothing; if it found nobody the images would be noise. Distances and the
Rank-1 protocol are the evaluation package's own (:func:`compute_distance_matrix`,
:func:`evaluate_rank`).
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_reid.evaluation.features import compute_distance_matrix
from edge_reid.evaluation.metrics import evaluate_rank


def colour_histogram(path: str, bins: int = 8) -> np.ndarray:
    """L1-normalised joint RGB histogram (``bins`` per channel) of one image file."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {path}")
    hist = cv2.calcHist([image], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).ravel()
    return hist / max(1.0, float(hist.sum()))


def histogram_rank1(dataset: object, bins: int = 8) -> float:
    """Rank-1 (fraction) of colour-histogram Euclidean nearest neighbour, query vs gallery of ``dataset``."""
    query, gallery = dataset.query, dataset.gallery  # type: ignore[attr-defined]
    qf = np.stack([colour_histogram(r.path, bins) for r in query])
    gf = np.stack([colour_histogram(r.path, bins) for r in gallery])
    cmc, _, _ = evaluate_rank(compute_distance_matrix(qf, gf), np.array([r.pid for r in query]),
                              np.array([r.pid for r in gallery]), np.array([r.camid for r in query]),
                              np.array([r.camid for r in gallery]), max_rank=1)
    return float(cmc[0])
