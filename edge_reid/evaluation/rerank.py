"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), written from the paper.

Inputs are squared Euclidean distances (query x gallery, query x query, gallery x gallery).
For every probe p the k-reciprocal set R*(p, k1) (k-reciprocal neighbours, expanded by the
k1/2-reciprocal sets of its members that overlap it by more than 2/3) is encoded as a
vector V_p with Gaussian-kernel weights exp(-d); local query expansion averages V over the
k2 nearest neighbours; the Jaccard distance of two vectors is 1 - sum(min) / sum(max).
As in the reference formulation (the evaluation spec), the (Q+G) x (Q+G) distance matrix is
divided row by row by its maximum, and that normalised matrix is used both for the neighbour
sets and in the result ``(1 - lambda) * Jaccard + lambda * original_normalised``.
Memory is O((Q + G)^2): fine for Market-1501 on a workstation, meant for offline evaluation.
"""

from __future__ import annotations

from typing import List

import numpy as np

from edge_reid.errors import InvalidInputError


def _check(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int, k2: int, lambda_value: float) -> None:
    """Shapes, finiteness and parameter ranges, each failing with one sentence."""
    if q_g.ndim != 2 or q_q.ndim != 2 or g_g.ndim != 2:
        raise InvalidInputError("Re-ranking needs three 2-D distance matrices (query-gallery, query-query, gallery-gallery).")
    num_q, num_g = q_g.shape
    if q_q.shape != (num_q, num_q) or g_g.shape != (num_g, num_g):
        raise InvalidInputError(
            f"Re-ranking got query-query {q_q.shape} and gallery-gallery {g_g.shape} matrices "
            f"that do not match the query-gallery shape {q_g.shape}."
        )
    if num_q == 0 or num_g == 0:
        raise InvalidInputError("Re-ranking needs at least one query and one gallery item.")
    for name, mat in (("query-gallery", q_g), ("query-query", q_q), ("gallery-gallery", g_g)):
        if not np.all(np.isfinite(mat)):
            raise InvalidInputError(f"The {name} distance matrix contains NaN or infinite values.")
    if k1 < 1 or k2 < 1:
        raise InvalidInputError(f"Re-ranking needs k1 >= 1 and k2 >= 1, got k1={k1} and k2={k2}.")
    if not 0.0 <= lambda_value <= 1.0:
        raise InvalidInputError(f"Re-ranking lambda must lie in [0, 1], got {lambda_value}.")


def _reciprocal(ranks: np.ndarray, i: int, k: int) -> np.ndarray:
    """The k-reciprocal neighbours of ``i``: its k nearest (itself included) that have ``i`` among theirs."""
    forward = ranks[i, : k + 1]
    backward = ranks[forward, : k + 1]
    return forward[np.any(backward == i, axis=1)]


def _encode(dist: np.ndarray, ranks: np.ndarray, k1: int) -> np.ndarray:
    """The weight vectors V (N x N, rows sum to 1) of the expanded k-reciprocal sets."""
    n = dist.shape[0]
    half = int(round(k1 / 2))
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        members = _reciprocal(ranks, i, k1)
        expanded: List[np.ndarray] = [members]
        for c in members:
            c_set = _reciprocal(ranks, int(c), half)
            if np.intersect1d(c_set, members, assume_unique=True).size > (2.0 / 3.0) * c_set.size:
                expanded.append(c_set)
        support = np.unique(np.concatenate(expanded))
        weights = np.exp(-dist[i, support])
        v[i, support] = weights / weights.sum()
    return v


def _jaccard_rows(v: np.ndarray, rows: int) -> np.ndarray:
    """Jaccard distances (first ``rows`` rows of V) x (all rows of V) via an inverted index."""
    n = v.shape[0]
    cols, rows_of = np.nonzero(v.T)  # column-major listing of the non-zeros
    holders = np.split(rows_of, np.searchsorted(cols, np.arange(1, n)))  # rows using column j
    out = np.empty((rows, n), dtype=np.float32)
    for i in range(rows):
        overlap = np.zeros(n, dtype=np.float32)
        for j in np.flatnonzero(v[i]):
            h = holders[j]
            overlap[h] += np.minimum(v[i, j], v[h, j])
        out[i] = 1.0 - overlap / (2.0 - overlap)
    return out


def re_ranking(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """Re-ranked query x gallery distances (float32) from squared Euclidean distances (spec formulation)."""
    q_g = np.asarray(q_g_dist, dtype=np.float32)
    q_q = np.asarray(q_q_dist, dtype=np.float32)
    g_g = np.asarray(g_g_dist, dtype=np.float32)
    _check(q_g, q_q, g_g, int(k1), int(k2), float(lambda_value))
    num_q, num_g = q_g.shape
    n = num_q + num_g
    k1 = min(int(k1), n - 1)
    k2 = min(int(k2), n)

    normed = np.block([[q_q, q_g], [q_g.T, g_g]])
    np.maximum(normed, 0.0, out=normed)
    # scale each row by its maximum (the reference formulation): the kernel weights exp(-d) then
    # do not vanish for large distances, and the final mix uses the same normalised distances
    scale = normed.max(axis=1, keepdims=True)
    normed /= np.where(scale > 0, scale, 1.0)
    ranks = _nearest(normed, k1 + 1)
    # an item is its own nearest neighbour even when duplicates tie with it
    ranks = _self_first(ranks, normed)

    v = _encode(normed, ranks, k1)
    if k2 > 1:
        v = _expand(v, ranks[:, :k2])
    jaccard = _jaccard_rows(v, num_q)[:, num_q:]
    original = normed[:num_q, num_q:]
    return ((1.0 - lambda_value) * jaccard + lambda_value * original).astype(np.float32)


def _self_first(ranks: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Put each row's own index first when it ties with the nearest neighbour (duplicates)."""
    n = ranks.shape[0]
    rows = np.arange(n)
    need = (ranks[:, 0] != rows) & (dist[rows, rows] <= dist[rows, ranks[:, 0]])
    for i in np.flatnonzero(need):
        others = ranks[i][ranks[i] != i]
        ranks[i] = np.concatenate([[i], others])[: ranks.shape[1]]
    return ranks


def _nearest(dist: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest entries of each row, sorted by (distance, index)."""
    n = dist.shape[1]
    if k >= n:
        return np.argsort(dist, axis=1, kind="stable")
    part = np.argpartition(dist, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(dist, part, axis=1)
    order = np.lexsort((part, vals), axis=-1)
    return np.take_along_axis(part, order, axis=1)


def _expand(v: np.ndarray, neighbours: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Local query expansion: each row of V replaced by the mean over its nearest rows (chunked)."""
    out = np.empty_like(v)
    for start in range(0, v.shape[0], chunk):
        out[start : start + chunk] = v[neighbours[start : start + chunk]].mean(axis=1)
    return out
