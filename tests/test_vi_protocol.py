"""Visible-infrared protocols: the spec's test vectors, and an independent implementation.

The reference below is written from the evaluation spec's text (not from the code under test):
sort the gallery by distance, drop cam2 for cam3 queries (SYSU), deduplicate the ids for the
SYSU CMC, compute AP and INP on the full kept ranking.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from edge_reid.data.datasets.base import ImageRecord
from edge_reid.errors import InvalidInputError
from edge_reid.evaluation.crossmodal import cosine_distance, evaluate_crossmodal, evaluate_regdb, evaluate_sysu
from edge_reid.evaluation.vi_protocol import average_metrics, run_regdb, run_sysu, sample_sysu_gallery

A, B, C = 1, 2, 3


def _ref_query(dist_row, q_pid, q_cam, g_pids, g_cams, sysu):
    """(first-match rank or None, AP, INP) for one query, by the book."""
    order = sorted(range(len(dist_row)), key=lambda j: (dist_row[j], j))
    if sysu and q_cam == 2:  # cam3 query: every cam2 gallery image goes
        order = [j for j in order if g_cams[j] != 1]
    ids = [g_pids[j] for j in order]
    if q_pid not in ids:
        return None
    if sysu:
        seen = []
        for pid in ids:
            if pid not in seen:
                seen.append(pid)
        first = seen.index(q_pid) + 1
    else:
        first = ids.index(q_pid) + 1
    hits, precisions, last = 0, [], 0
    for pos, pid in enumerate(ids, start=1):
        if pid == q_pid:
            hits += 1
            precisions.append(hits / pos)
            last = pos
    return first, sum(precisions) / hits, hits / last


def _reference(dist, q_pids, g_pids, q_cams, g_cams, max_rank, sysu):
    cmc = np.zeros(max_rank)
    aps, inps = [], []
    for i in range(dist.shape[0]):
        out = _ref_query(list(dist[i]), q_pids[i], q_cams[i], list(g_pids), list(g_cams), sysu)
        if out is None:
            continue
        first, ap, inp = out
        for k in range(max_rank):
            if k + 1 >= first:
                cmc[k] += 1
        aps.append(ap)
        inps.append(inp)
    return cmc / len(aps), float(np.mean(aps)), float(np.mean(inps))


def test_vector_dedup_cmc() -> None:
    # true id A, ranking [B, B, A]: standard CMC hits at rank 3, SYSU CMC at rank 2
    dist = np.array([[0.1, 0.2, 0.3]])
    std, _, _ = evaluate_regdb(dist, [A], [B, B, A], [5], [0, 0, 0], max_rank=3)
    sysu, _, _ = evaluate_sysu(dist, [A], [B, B, A], [5], [0, 0, 0], max_rank=3)
    np.testing.assert_allclose(std, [0, 0, 1])
    np.testing.assert_allclose(sysu, [0, 1, 1])


def test_vector_ap_inp() -> None:
    # ranking [B, A, A, C]: R1 0, AP (1/2 + 2/3) / 2 = 0.5833, INP 2/3
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    for fn in (evaluate_regdb, evaluate_sysu):
        cmc, mAP, mINP = fn(dist, [A], [B, A, A, C], [5], [0, 0, 0, 0], max_rank=4)
        assert cmc[0] == 0.0
        assert mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
        assert mAP == pytest.approx(0.5833, abs=1e-4)
        assert mINP == pytest.approx(2 / 3)


def test_cam3_query_loses_every_cam2_image_other_queries_keep_them() -> None:
    # gallery: [B cam2, A cam2, A cam1]; camids 0-based (cam2 -> 1, cam1 -> 0, cam3 -> 2, cam6 -> 5)
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    cmc, mAP, mINP = evaluate_sysu(dist, [A, A], [B, A, A], [2, 5], [1, 1, 0], max_rank=3)
    # cam3 query: ranking [A cam1] -> rank 1, AP 1, INP 1
    # cam6 query: ranking [B, A, A] -> dedup rank 2, AP (1/2 + 2/3) / 2, INP 2/3
    np.testing.assert_allclose(cmc, [0.5, 1.0, 1.0])
    assert mAP == pytest.approx((1 + (1 / 2 + 2 / 3) / 2) / 2)
    assert mINP == pytest.approx((1 + 2 / 3) / 2)


def test_query_without_match_after_removal_is_skipped() -> None:
    # query 0 (A, cam3): its only match is in cam2 and removed -> skipped; query 1 (B, cam6): rank 1
    dist = np.array([[0.1, 0.2], [0.2, 0.1]])
    cmc, mAP, mINP = evaluate_sysu(dist, [A, B], [A, B], [2, 5], [1, 0], max_rank=2)
    np.testing.assert_allclose(cmc, [1.0, 1.0])
    assert mAP == pytest.approx(1.0) and mINP == pytest.approx(1.0)


@pytest.mark.parametrize("sysu", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_matches_independent_implementation_on_random_matrices(sysu: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    nq, ng = 30, 45
    dist = rng.random((nq, ng))
    dist[:, ::7] = np.round(dist[:, ::7], 1)  # some ties
    q_pids = rng.integers(0, 8, nq)
    g_pids = rng.integers(0, 8, ng)
    q_cams = rng.choice([2, 5], nq)
    g_cams = rng.choice([0, 1, 3, 4], ng)
    fn = evaluate_sysu if sysu else evaluate_regdb
    got = fn(dist, q_pids, g_pids, q_cams, g_cams, max_rank=20)
    want = _reference(dist, q_pids, g_pids, q_cams, g_cams, 20, sysu)
    np.testing.assert_allclose(got[0], want[0])
    assert got[1] == pytest.approx(want[1])
    assert got[2] == pytest.approx(want[2])


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(InvalidInputError):
        evaluate_crossmodal(np.zeros((2, 3)), [1], [1, 2, 3], [0], [0, 0, 0])
    with pytest.raises(InvalidInputError, match="matching"):
        evaluate_regdb(np.zeros((1, 2)), [9], [1, 2], [0], [1, 1])


def _pool():
    """Visible records: ids 1..4 over cams 0, 1, 3, 4 with 1-13 images each, shuffled order."""
    rng = np.random.default_rng(0)
    records = []
    for pid in range(1, 5):
        for cam in (0, 1, 3, 4):
            if (pid + cam) % 4 == 0:
                continue  # this id is absent from this camera
            for k in range(int(rng.integers(1, 14))):
                records.append(ImageRecord(f"/d/cam{cam + 1}/{pid:04d}/{k:04d}.jpg", pid, cam, 0))
    random.Random(1).shuffle(records)
    return records


def test_sysu_sampler_single_and_multi_shot() -> None:
    records = _pool()
    pairs = {(r.pid, r.camid) for r in records}
    single = sample_sysu_gallery(records, "all", 1, 0)
    assert sorted((records[i].pid, records[i].camid) for i in single) == sorted(pairs)
    assert sample_sysu_gallery(records, "all", 1, 0) == single
    assert any(sample_sysu_gallery(records, "all", 1, t) != single for t in range(1, 10))
    indoor = sample_sysu_gallery(records, "indoor", 1, 0)
    assert {(records[i].pid, records[i].camid) for i in indoor} == {p for p in pairs if p[1] in (0, 1)}
    multi = sample_sysu_gallery(records, "all", 10, 3)
    for pid, cam in pairs:
        have = sum(1 for r in records if (r.pid, r.camid) == (pid, cam))
        assert sum(1 for i in multi if (records[i].pid, records[i].camid) == (pid, cam)) == min(10, have)
    assert len(set(multi)) == len(multi)


def test_sysu_sampler_follows_the_spec_draw_order() -> None:
    # per trial: random.seed(t), then per sorted id, per camera in order, choice from the sorted list
    records = _pool()
    rng = random.Random(7)
    want = []
    for pid in sorted({r.pid for r in records}):
        for cam in (0, 1, 3, 4):
            files = sorted(r.path for r in records if (r.pid, r.camid) == (pid, cam))
            if files:
                want.append(rng.choice(files))
    got = [records[i].path for i in sample_sysu_gallery(records, "all", 1, 7)]
    assert got == want
    with pytest.raises(InvalidInputError):
        sample_sysu_gallery(records, "outdoor", 1, 0)
    with pytest.raises(InvalidInputError):
        sample_sysu_gallery(records, "all", 3, 0)


def test_run_sysu_averages_trials_and_run_regdb() -> None:
    records = _pool()
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 16))
    gf = np.stack([centres[r.pid] + 0.8 * rng.normal(size=16) for r in records])
    q_pids = np.repeat(np.arange(1, 5), 3)
    q_cams = np.tile([2, 5, 2], 4)
    qf = centres[q_pids] + 0.8 * rng.normal(size=(q_pids.size, 16))
    out = run_sysu(qf, q_pids, q_cams, gf, records, "all", 1, trials=10)
    assert len(out["trials"]) == 10 and out["num_query"] == 12
    for key in ("rank1", "mAP", "mINP"):
        assert out["metrics"][key] == pytest.approx(np.mean([t[key] for t in out["trials"]]))
    assert len({round(t["mAP"], 6) for t in out["trials"]}) > 1
    dist = cosine_distance(qf, gf)
    t0 = sample_sysu_gallery(records, "all", 1, 0)
    want = _reference(dist[:, t0], q_pids, [records[i].pid for i in t0], q_cams, [records[i].camid for i in t0], 20, True)
    assert out["trials"][0]["mAP"] == pytest.approx(100 * want[1])
    regdb = run_regdb(qf, q_pids, np.zeros_like(q_pids), gf, [r.pid for r in records], [1] * len(records))
    assert regdb["rank1"] >= 0 and "mINP" in regdb
    assert average_metrics([{"a": 1.0}, {"a": 3.0}]) == {"a": 2.0}
