"""The visible-infrared protocols over features: SYSU-MM01's seeded gallery trials, RegDB.

SYSU-MM01 (community protocol, see the evaluation spec): the query is every infrared image of
cam3 and cam6 of the test ids; the gallery is drawn from the visible images of cam1, cam2, cam4,
cam5 (``all``) or cam1, cam2 (``indoor``). Trial ``t`` seeds Python's ``random`` with ``t`` and,
for each test id (sorted) and each gallery camera (in that order) holding the id, draws one
image (single-shot) or ten (multi-shot, all if fewer) from the sorted file list. Query features
are computed once; the trials' metrics are averaged.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError
from edge_reid.evaluation.crossmodal import cosine_distance, evaluate_regdb, evaluate_sysu
from edge_reid.evaluation.metrics import metrics_percent

#: 0-based SYSU-MM01 cameras: cam1, cam2 indoor RGB; cam3 indoor IR; cam4, cam5 outdoor RGB; cam6 outdoor IR.
SYSU_QUERY_CAMERAS: Tuple[int, ...] = (2, 5)
SYSU_GALLERY_CAMERAS: Dict[str, Tuple[int, ...]] = {"all": (0, 1, 3, 4), "indoor": (0, 1)}
SYSU_SHOTS = (1, 10)
REPORT_RANKS = (1, 5, 10, 20)


def sysu_gallery_cameras(mode: str) -> Tuple[int, ...]:
    """The 0-based gallery cameras of a SYSU-MM01 search mode (``all`` or ``indoor``)."""
    if mode not in SYSU_GALLERY_CAMERAS:
        raise InvalidInputError(f"Unknown SYSU-MM01 search mode '{mode}'; choose all or indoor.")
    return SYSU_GALLERY_CAMERAS[mode]


def sample_sysu_gallery(records: Sequence[Any], mode: str = "all", shots: int = 1, trial: int = 0) -> List[int]:
    """Indices into ``records`` (visible test images) forming trial ``trial``'s gallery.

    ``records`` have ``path``, ``pid`` and ``camid``; those outside the mode's cameras are
    ignored. The same (records, mode, shots, trial) always gives the same gallery.
    """
    if shots not in SYSU_SHOTS:
        raise InvalidInputError(f"SYSU-MM01 galleries are single-shot (1) or multi-shot (10), got {shots}.")
    cameras = sysu_gallery_cameras(mode)
    groups: Dict[Tuple[int, int], List[Tuple[str, int]]] = defaultdict(list)
    for index, record in enumerate(records):
        if int(record.camid) in cameras:
            groups[(int(record.pid), int(record.camid))].append((str(record.path), index))
    rng = random.Random(int(trial))
    chosen: List[int] = []
    for pid in sorted({pid for pid, _ in groups}):
        for cam in cameras:
            files = sorted(groups.get((pid, cam), []))
            if not files:
                continue
            if shots == 1:
                chosen.append(rng.choice(files)[1])
            else:
                chosen.extend(f[1] for f in rng.sample(files, min(shots, len(files))))
    if not chosen:
        raise InvalidInputError(f"The SYSU-MM01 gallery pool has no visible image from the {mode}-search cameras.")
    return chosen


def _percent(result: Tuple[np.ndarray, float, float]) -> Dict[str, float]:
    cmc, mAP, mINP = result
    return metrics_percent(cmc, mAP, mINP, REPORT_RANKS)


def average_metrics(trials: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """The mean of each metric over trials (or splits)."""
    if not trials:
        raise InvalidInputError("There are no trials to average.")
    return {key: float(np.mean([t[key] for t in trials])) for key in trials[0]}


def run_sysu(
    qf: np.ndarray,
    q_pids: Sequence[int],
    q_camids: Sequence[int],
    gf: np.ndarray,
    g_records: Sequence[Any],
    mode: str = "all",
    shots: int = 1,
    trials: int = 10,
) -> Dict[str, Any]:
    """SYSU-MM01 metrics (percent) per trial and averaged, from query and gallery-pool features.

    ``gf`` row ``i`` is the feature of ``g_records[i]`` (the whole visible pool, embedded once);
    each trial scores the query against its sampled subset.
    """
    if trials < 1:
        raise InvalidInputError(f"The number of SYSU-MM01 trials must be at least 1, got {trials}.")
    if len(g_records) != len(gf):
        raise InvalidInputError(f"{len(gf)} gallery features were given for {len(g_records)} gallery records.")
    keep = np.isin(np.asarray(q_camids), SYSU_QUERY_CAMERAS)
    if not keep.any():
        raise InvalidInputError("The SYSU-MM01 query has no infrared image from cam3 or cam6.")
    qf, qp, qc = np.asarray(qf)[keep], np.asarray(q_pids)[keep], np.asarray(q_camids)[keep]
    g_pids = np.asarray([int(r.pid) for r in g_records])
    g_camids = np.asarray([int(r.camid) for r in g_records])
    dist_all = cosine_distance(qf, gf)
    per_trial = []
    for trial in range(trials):
        cols = np.asarray(sample_sysu_gallery(g_records, mode, shots, trial))
        result = evaluate_sysu(dist_all[:, cols], qp, g_pids[cols], qc, g_camids[cols])
        per_trial.append({"trial": trial, "num_gallery": int(cols.size), **_percent(result)})
    metrics = average_metrics([{k: v for k, v in t.items() if k not in ("trial", "num_gallery")} for t in per_trial])
    return {"protocol": "sysu", "mode": mode, "shots": shots, "num_query": int(qp.size),
            "metrics": metrics, "trials": per_trial}


def run_regdb(
    qf: np.ndarray, q_pids: Sequence[int], q_camids: Sequence[int],
    gf: np.ndarray, g_pids: Sequence[int], g_camids: Sequence[int],
) -> Dict[str, float]:
    """RegDB metrics (percent) of one split and direction: all query vs all gallery images."""
    return _percent(evaluate_regdb(cosine_distance(qf, gf), q_pids, g_pids, q_camids, g_camids))
