"""Visible-infrared ranking metrics: the SYSU-MM01 and RegDB community protocols.

Both rank each query's gallery by distance (stable sort: ties keep gallery order) and report
CMC, mAP and mINP (fractions in [0, 1]); mAP and mINP always use the full ranking.

* SYSU-MM01 (:func:`evaluate_sysu`): for a query from cam3 every cam2 gallery image is removed,
  whatever its id (the two cameras watch the same room); nothing else is removed. The CMC is
  computed on the kept ranking with gallery ids deduplicated (each id's first occurrence kept).
* RegDB (:func:`evaluate_regdb`): nothing removed, the standard CMC.

Camera ids are 0-based (SYSU's ``cam3`` is camera 2). Queries with no match left are skipped
and counted in a log line.
"""

from __future__ import annotations

import logging
from typing import Dict, Mapping, Sequence, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError
from edge_reid.evaluation.metrics import validate_inputs

logger = logging.getLogger(__name__)

#: SYSU-MM01's removal rule with 0-based cameras: a cam3 query loses every cam2 gallery image.
SYSU_REMOVED_CAMERAS: Dict[int, Tuple[int, ...]] = {2: (1,)}


def evaluate_crossmodal(
    distmat: np.ndarray,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    max_rank: int = 20,
    dedup_cmc: bool = False,
    removed_cameras: Mapping[int, Sequence[int]] = {},
) -> Tuple[np.ndarray, float, float]:
    """CMC (length ``max_rank``), mAP and mINP of a cross-modality ranking.

    ``removed_cameras[c]`` lists the gallery cameras dropped for a query from camera ``c``;
    ``dedup_cmc`` computes the CMC over the deduplicated id ranking (SYSU-MM01).
    """
    if int(max_rank) != max_rank or max_rank < 1:
        raise InvalidInputError(f"max_rank must be a positive integer, got {max_rank!r}.")
    dist, qp, gp, qc, gc = validate_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    max_rank = int(max_rank)
    cmc_sum = np.zeros(max_rank, dtype=np.float64)
    aps, inps = [], []
    removal = {int(c): np.isin(gc, np.asarray(list(cams), dtype=np.int64)) for c, cams in removed_cameras.items()}
    order = np.argsort(dist, axis=1, kind="stable")
    for i in range(dist.shape[0]):
        ranked = order[i]
        if int(qc[i]) in removal:
            ranked = ranked[~removal[int(qc[i])][ranked]]
        ranked_pids = gp[ranked]
        matches = ranked_pids == qp[i]
        if not matches.any():
            continue
        if dedup_cmc:
            _, first = np.unique(ranked_pids, return_index=True)
            first_rank = int(np.searchsorted(np.sort(first), np.flatnonzero(matches)[0])) + 1
        else:
            first_rank = int(np.flatnonzero(matches)[0]) + 1
        if first_rank <= max_rank:
            cmc_sum[first_rank - 1:] += 1.0
        positions = np.flatnonzero(matches) + 1.0  # 1-based ranks of the matches
        hits = np.arange(1, positions.size + 1, dtype=np.float64)
        aps.append(float(np.mean(hits / positions)))
        inps.append(positions.size / positions[-1])
    if not aps:
        raise InvalidInputError(
            f"None of the {dist.shape[0]} queries has a matching gallery image, so no metric can be computed."
        )
    if len(aps) < dist.shape[0]:
        logger.info("%d of %d queries have no gallery match and were skipped.", dist.shape[0] - len(aps), dist.shape[0])
    return cmc_sum / len(aps), float(np.mean(aps)), float(np.mean(inps))


def evaluate_sysu(
    distmat: np.ndarray,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    max_rank: int = 20,
) -> Tuple[np.ndarray, float, float]:
    """SYSU-MM01: cam3 queries lose cam2 gallery images; deduplicated CMC, full-ranking mAP/mINP."""
    return evaluate_crossmodal(distmat, q_pids, g_pids, q_camids, g_camids, max_rank,
                               dedup_cmc=True, removed_cameras=SYSU_REMOVED_CAMERAS)


def evaluate_regdb(
    distmat: np.ndarray,
    q_pids: Sequence[int],
    g_pids: Sequence[int],
    q_camids: Sequence[int],
    g_camids: Sequence[int],
    max_rank: int = 20,
) -> Tuple[np.ndarray, float, float]:
    """RegDB: nothing removed, the standard CMC, full-ranking mAP/mINP."""
    return evaluate_crossmodal(distmat, q_pids, g_pids, q_camids, g_camids, max_rank)


def cosine_distance(qf: np.ndarray, gf: np.ndarray) -> np.ndarray:
    """The protocols' distance: ``-q . g`` of L2-normalised features (float32)."""
    qf = np.asarray(qf, dtype=np.float32)
    gf = np.asarray(gf, dtype=np.float32)
    if qf.ndim != 2 or gf.ndim != 2 or qf.shape[1] != gf.shape[1]:
        raise InvalidInputError(
            f"Feature matrices must be 2-D with the same width, got query {qf.shape} and gallery {gf.shape}."
        )
    qn = qf / np.maximum(np.linalg.norm(qf, axis=1, keepdims=True), 1e-12)
    gn = gf / np.maximum(np.linalg.norm(gf, axis=1, keepdims=True), 1e-12)
    return -(qn @ gn.T)
