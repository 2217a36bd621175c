"""How hard the synthetic set is: Rank-1 of a raw colour-histogram nearest neighbour.

A sanity check of the generator, not the toolkit's evaluation (that is
``edge_reid.evaluation``): if colour alone found the right person the set would teach
nothing; if it found nobody the images would be noise.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def colour_histogram(path: str, bins: int = 8) -> np.ndarray:
    """L1-normalised joint RGB histogram (``bins`` per channel) of one image file."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read {path}")
    hist = cv2.calcHist([image], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).ravel()
    return hist / max(1.0, float(hist.sum()))


def rank1(distmat: np.ndarray, q_pids: Sequence[int], g_pids: Sequence[int],
          q_cams: Sequence[int], g_cams: Sequence[int]) -> float:
    """Rank-1 (fraction) under the Market-1501 protocol: same id + same camera is junk."""
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_cams, g_cams = np.asarray(q_cams), np.asarray(g_cams)
    junk = (q_pids[:, None] == g_pids[None, :]) & (q_cams[:, None] == g_cams[None, :])
    dist = np.where(junk, np.inf, distmat)
    match = q_pids[:, None] == g_pids[None, :]
    valid = (match & ~junk).any(axis=1)
    best = np.argmin(dist, axis=1)
    hits = g_pids[best] == q_pids
    return float(hits[valid].mean()) if valid.any() else 0.0


def histogram_rank1(dataset: object, bins: int = 8) -> float:
    """Rank-1 of colour-histogram Euclidean nearest neighbour, query vs gallery of ``dataset``."""
    query, gallery = dataset.query, dataset.gallery  # type: ignore[attr-defined]
    qf = np.stack([colour_histogram(r.path, bins) for r in query])
    gf = np.stack([colour_histogram(r.path, bins) for r in gallery])
    d = (qf ** 2).sum(1)[:, None] + (gf ** 2).sum(1)[None, :] - 2 * qf @ gf.T
    return rank1(np.sqrt(np.maximum(d, 0)), [r.pid for r in query], [r.pid for r in gallery],
                 [r.camid for r in query], [r.camid for r in gallery])
