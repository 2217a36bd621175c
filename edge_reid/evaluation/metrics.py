"""Ranking metrics for single-modality ReID: CMC, mAP and mINP from a distance matrix.

The protocol is the one in the evaluation spec: per query, gallery items with the same id
AND the same camera are junk and removed; the rest are ranked by distance with a stable
sort (ties keep gallery order); a match is a gallery item with the query's id. Queries with
no valid match are skipped, counted and reported (a warning; :func:`evaluate_rank_counted`
returns the count). Everything is vectorised over chunks
of queries so that a Market-1501-sized matrix evaluates in seconds with bounded memory.
"""

from __future__ import annotations

import logging
import sys
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError

logger = logging.getLogger(__name__)

#: Ranks reported in tables and metric dicts.
REPORT_RANKS: Tuple[int, ...] = (1, 5, 10, 20)

#: Upper bound on the number of elements of one chunk's (queries x gallery) work arrays.
_CHUNK_ELEMENTS = 1 << 22


def _as_ids(values: Sequence[int], name: str) -> np.ndarray:
    """A 1-D int64 array of ids, or a clear error."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be a 1-D sequence of integers, got an array of shape {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InvalidInputError(f"{name} must contain integers only.")
    return arr.astype(np.int64)


def validate_inputs(
    distmat: np.ndarray,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check shapes and values of the metric inputs; return them as numpy arrays."""
    dist = np.asarray(distmat)
    if dist.ndim != 2:
        raise InvalidInputError(f"The distance matrix must be 2-D (queries x gallery), got {dist.ndim} dimension(s).")
    if not (np.issubdtype(dist.dtype, np.floating) or np.issubdtype(dist.dtype, np.integer)):
        raise InvalidInputError(f"The distance matrix must be numeric, got dtype {dist.dtype}.")
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise InvalidInputError(f"The distance matrix is empty ({num_q} queries x {num_g} gallery items).")
    arrays = []
    for name, values, expected, axis in (
        ("q_pids", q_pids, num_q, "rows"),
        ("g_pids", g_pids, num_g, "columns"),
        ("q_camids", q_camids, num_q, "rows"),
        ("g_camids", g_camids, num_g, "columns"),
    ):
        arr = _as_ids(values, name)
        if arr.shape[0] != expected:
            raise InvalidInputError(
                f"{name} has {arr.shape[0]} entries but the distance matrix has {expected} {axis}."
            )
        arrays.append(arr)
    if not np.all(np.isfinite(dist)):
        bad = int(np.size(dist) - np.count_nonzero(np.isfinite(dist)))
        raise InvalidInputError(f"The distance matrix contains {bad} NaN or infinite value(s).")
    return (dist, *arrays)  # type: ignore[return-value]


def _stable_argsort(dist: np.ndarray) -> np.ndarray:
    """Row-wise stable argsort (ties keep gallery order), several times faster than numpy's.

    float32: each distance is mapped to an order-preserving uint32 and packed with its
    column index into one uint64 key, so a plain sort of the keys is exactly the stable order.
    Other dtypes: a quicksort, then a stable re-sort of only the rows that contain ties.
    """
    if dist.dtype != np.float32 or dist.shape[1] >= 1 << 32:
        order = np.argsort(dist, axis=1)
        ranked = np.take_along_axis(dist, order, axis=1)
        tied = np.flatnonzero(np.any(ranked[:, 1:] == ranked[:, :-1], axis=1))
        if tied.size:
            order[tied] = np.argsort(dist[tied], axis=1, kind="stable")
        return order
    signed = (np.ascontiguousarray(dist) + np.float32(0.0)).view(np.int32)  # + 0.0: -0.0 ties 0.0
    mask = signed >> 31  # all ones for negative floats, zero otherwise
    mask |= np.int32(-(2**31))
    signed ^= mask  # negative: flip all bits; positive: set the sign bit -> unsigned order
    key = signed.view(np.uint32).astype(np.uint64)
    key <<= np.uint64(32)
    key |= np.arange(dist.shape[1], dtype=np.uint64)
    key.sort(axis=1)
    if sys.byteorder == "little":
        return key.view(np.uint32)[:, 0::2].astype(np.intp)
    return (key & np.uint64(0xFFFFFFFF)).astype(np.intp)


def _chunk_stats(
    dist: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, q_camids: np.ndarray, g_camids: np.ndarray
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per query of one chunk: (first-match rank, AP, INP, has-match), ranks 1-based after junk removal.

    Only the few same-id entries of each ranked row matter (matches and junk), so after
    the sort everything is computed on that sparse set instead of full-width arrays.
    """
    num_q = dist.shape[0]
    order = _stable_argsort(dist)
    rows, cols = np.nonzero(g_pids[order] == q_pids[:, None])  # row-major: sorted by row, then rank
    junk = g_camids[order[rows, cols]] == q_camids[rows]
    del order

    # counts within each row of junk / matches up to each same-id entry
    row_first = np.searchsorted(rows, np.arange(num_q))  # index of each row's first entry
    junk_excl = np.cumsum(junk) - junk
    junk_before = junk_excl - junk_excl[row_first[rows]]
    match = ~junk
    match_incl = np.cumsum(match)
    hits = match_incl - (match_incl - match)[row_first[rows]]

    m_rows = rows[match]
    kept_rank = (cols + 1 - junk_before)[match]  # 1-based rank among kept items
    hits = hits[match]
    num_rel = np.bincount(m_rows, minlength=num_q).astype(np.float64)
    has_match = num_rel > 0
    safe_rel = np.where(has_match, num_rel, 1.0)

    ap = np.bincount(m_rows, weights=hits / kept_rank, minlength=num_q) / safe_rel
    first_rank = np.zeros(num_q, dtype=np.int64)
    last_rank = np.ones(num_q, dtype=np.float64)
    if m_rows.size:
        uniq, first_idx = np.unique(m_rows, return_index=True)
        last_idx = np.r_[first_idx[1:], m_rows.size] - 1
        first_rank[uniq] = kept_rank[first_idx]
        last_rank[uniq] = kept_rank[last_idx]
    inp = np.where(has_match, num_rel / last_rank, 0.0)
    return first_rank, ap, inp, has_match


def _single_gallery_shot_cmc(
    dist: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int,
    repeats: int = 10,
    seed: int = 0,
) -> Tuple[np.ndarray, int]:
    """Classic CUHK03 CMC: one random gallery image per id (after junk removal), averaged over repeats."""
    rng = np.random.default_rng(seed)
    cmc_sum = np.zeros(max_rank, dtype=np.float64)
    num_valid = 0
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        ranked_pids = g_pids[order][keep]
        if not np.any(ranked_pids == q_pids[i]):
            continue
        num_valid += 1
        uniq, inverse = np.unique(ranked_pids, return_inverse=True)
        for _ in range(repeats):
            # one random member of every id, then the rank of the query id's member among them
            noise = rng.random(ranked_pids.size)
            chosen = np.full(uniq.size, -1, dtype=np.int64)
            best = np.full(uniq.size, np.inf)
            np.minimum.at(best, inverse, noise)
            is_chosen = noise == best[inverse]
            chosen[inverse[is_chosen]] = np.flatnonzero(is_chosen)
            picked = np.sort(chosen)
            rank = int(np.flatnonzero(ranked_pids[picked] == q_pids[i])[0]) + 1
            if rank <= max_rank:
                cmc_sum[rank - 1 :] += 1.0 / repeats
    return cmc_sum, num_valid


def evaluate_rank(
    distmat: np.ndarray,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    max_rank: int = 50,
    cuhk03_single_gallery_shot: bool = False,
) -> Tuple[np.ndarray, float, float]:
    """CMC (length ``max_rank``), mAP and mINP, all fractions in [0, 1].

    ``cuhk03_single_gallery_shot`` switches the CMC to the classic CUHK03 protocol (one
    random gallery image per id, 10 repeats, fixed seed); mAP and mINP are unchanged.
    """
    cmc, mAP, mINP, _ = evaluate_rank_counted(distmat, q_pids, g_pids, q_camids, g_camids, max_rank,
                                              cuhk03_single_gallery_shot)
    return cmc, mAP, mINP


def evaluate_rank_counted(
    distmat: np.ndarray,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    max_rank: int = 50,
    cuhk03_single_gallery_shot: bool = False,
) -> Tuple[np.ndarray, float, float, int]:
    """:func:`evaluate_rank` plus the number of queries the metrics average over (those with a match)."""
    if int(max_rank) != max_rank or max_rank < 1:
        raise InvalidInputError(f"max_rank must be a positive integer, got {max_rank!r}.")
    max_rank = int(max_rank)
    dist, qp, gp, qc, gc = validate_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    num_q, num_g = dist.shape
    chunk = max(1, _CHUNK_ELEMENTS // num_g)

    first_ranks, aps, inps, valids = [], [], [], []
    for start in range(0, num_q, chunk):
        stop = min(num_q, start + chunk)
        fr, ap, inp, ok = _chunk_stats(dist[start:stop], qp[start:stop], gp, qc[start:stop], gc)
        first_ranks.append(fr)
        aps.append(ap)
        inps.append(inp)
        valids.append(ok)
    first_rank = np.concatenate(first_ranks)
    ap = np.concatenate(aps)
    inp = np.concatenate(inps)
    valid = np.concatenate(valids)

    num_valid = int(valid.sum())
    if num_valid == 0:
        raise InvalidInputError(
            f"None of the {num_q} queries has a matching gallery image from another camera, so no metric can be computed."
        )
    if num_valid < num_q:
        logger.warning("%d of %d queries have no gallery match from another camera and were left out of the metrics.",
                       num_q - num_valid, num_q)

    if cuhk03_single_gallery_shot:
        cmc_sum, _ = _single_gallery_shot_cmc(dist, qp, gp, qc, gc, max_rank)
        cmc = cmc_sum / num_valid
    else:
        ranks = first_rank[valid]
        counts = np.bincount(np.minimum(ranks, max_rank + 1) - 1, minlength=max_rank + 1)[:max_rank]
        cmc = np.cumsum(counts) / num_valid
    return cmc.astype(np.float64), float(ap[valid].mean()), float(inp[valid].mean()), num_valid


def metrics_percent(
    cmc: np.ndarray, mAP: float, mINP: float, ranks: Sequence[int] = REPORT_RANKS
) -> Dict[str, float]:
    """``{"rank1": ..., "rank5": ..., "mAP": ..., "mINP": ...}`` in percent (ranks beyond the CMC omitted)."""
    out: Dict[str, float] = {}
    for r in ranks:
        if 1 <= r <= len(cmc):
            out[f"rank{r}"] = float(cmc[r - 1]) * 100.0
    out["mAP"] = float(mAP) * 100.0
    out["mINP"] = float(mINP) * 100.0
    return out


def format_metrics_table(metrics: Mapping[str, float], title: Optional[str] = None) -> str:
    """A two-row text table of percent metrics (``rankN``, ``mAP``, ``mINP`` keys, in that order)."""
    keys = sorted((k for k in metrics if k.startswith("rank")), key=lambda k: int(k[4:]))
    keys += [k for k in ("mAP", "mINP") if k in metrics]
    headers = [f"Rank-{k[4:]}" if k.startswith("rank") else k for k in keys]
    cells = [f"{metrics[k]:.2f}" for k in keys]
    widths = [max(len(h), len(c)) for h, c in zip(headers, cells)]
    head = " | ".join(h.rjust(w) for h, w in zip(headers, widths))
    row = " | ".join(c.rjust(w) for c, w in zip(cells, widths))
    rule = "-+-".join("-" * w for w in widths)
    lines = ([title] if title else []) + [head, rule, row]
    return "\n".join(lines)


def metrics_table(
    cmc: np.ndarray, mAP: float, mINP: float, ranks: Sequence[int] = REPORT_RANKS, title: Optional[str] = None
) -> str:
    """Rank-1/5/10/20, mAP and mINP as a percentage table (the output of :func:`evaluate_rank`)."""
    return format_metrics_table(metrics_percent(cmc, mAP, mINP, ranks), title=title)
