"""evaluate_rank: hand-computed cases, bad input, and a comparison with a per-query loop."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from edge_reid.errors import InvalidInputError
from edge_reid.evaluation.metrics import evaluate_rank, format_metrics_table, metrics_percent, metrics_table


def _reference(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """Slow, obviously-correct per-query implementation of the spec."""
    cmc_total = np.zeros(max_rank)
    aps, inps = [], []
    for i in range(distmat.shape[0]):
        order = sorted(range(distmat.shape[1]), key=lambda j: (distmat[i, j], j))
        ranked = [j for j in order if not (g_pids[j] == q_pids[i] and g_camids[j] == q_camids[i])]
        rel = [1 if g_pids[j] == q_pids[i] else 0 for j in ranked]
        if sum(rel) == 0:
            continue
        first = rel.index(1) + 1
        for k in range(max_rank):
            cmc_total[k] += 1.0 if k + 1 >= first else 0.0
        hits, precisions, last = 0, [], 0
        for pos, r in enumerate(rel, start=1):
            if r:
                hits += 1
                precisions.append(hits / pos)
                last = pos
        aps.append(sum(precisions) / sum(rel))
        inps.append(sum(rel) / last)
    return cmc_total / len(aps), float(np.mean(aps)), float(np.mean(inps))


def test_junk_same_id_same_camera_is_removed() -> None:
    # query pid 1 cam 0. Gallery by distance: [pid1 cam0 (junk), pid2 cam1, pid1 cam1, pid3 cam1]
    dist = np.array([[0.1, 0.2, 0.3, 0.4]])
    cmc, mAP, mINP = evaluate_rank(dist, [1], [1, 2, 1, 3], [0], [0, 1, 1, 1], max_rank=3)
    # after junk removal: [2, 1, 3] -> first match at rank 2; AP = 1/2; INP = 1/2
    np.testing.assert_allclose(cmc, [0.0, 1.0, 1.0])
    assert mAP == pytest.approx(0.5)
    assert mINP == pytest.approx(0.5)


def test_same_id_other_camera_and_distractors() -> None:
    # query pid 5 cam 0; gallery ranked: [0 (distractor), 5 cam1, 0, 5 cam2, 7]
    dist = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    cmc, mAP, mINP = evaluate_rank(dist, [5], [0, 5, 0, 5, 7], [0], [1, 1, 2, 2, 1], max_rank=5)
    # matches at ranks 2 and 4: AP = (1/2 + 2/4) / 2 = 0.5; INP = 2/4
    np.testing.assert_allclose(cmc, [0, 1, 1, 1, 1])
    assert mAP == pytest.approx(0.5)
    assert mINP == pytest.approx(0.5)


def test_query_without_valid_match_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    # query 0: only same-camera copy of itself (junk) -> skipped. query 1: match at rank 1 of 2.
    dist = np.array([[0.1, 0.5], [0.9, 0.2]])
    with caplog.at_level(logging.INFO, logger="edge_reid.evaluation.metrics"):
        cmc, mAP, mINP = evaluate_rank(dist, [1, 2], [1, 2], [0, 0], [0, 1], max_rank=2)
    np.testing.assert_allclose(cmc, [1.0, 1.0])
    assert mAP == pytest.approx(1.0)
    assert mINP == pytest.approx(1.0)
    assert "1 of 2 queries" in caplog.text


def test_ties_keep_gallery_order() -> None:
    # all distances equal: stable order is gallery order [3, 4, 4] for query pid 4
    dist = np.zeros((1, 3))
    cmc, mAP, mINP = evaluate_rank(dist, [4], [3, 4, 4], [0], [1, 1, 1], max_rank=3)
    # matches at ranks 2, 3: AP = (1/2 + 2/3) / 2 = 7/12; INP = 2/3
    np.testing.assert_allclose(cmc, [0, 1, 1])
    assert mAP == pytest.approx(7 / 12)
    assert mINP == pytest.approx(2 / 3)


def test_all_correct_at_top() -> None:
    dist = np.array([[0.1, 0.2, 0.9, 0.8], [0.7, 0.6, 0.1, 0.2]])
    cmc, mAP, mINP = evaluate_rank(dist, [1, 2], [1, 1, 2, 2], [0, 0], [1, 2, 1, 2], max_rank=4)
    np.testing.assert_allclose(cmc, np.ones(4))
    assert mAP == pytest.approx(1.0)
    assert mINP == pytest.approx(1.0)


def test_all_wrong_at_top() -> None:
    # two queries, each with its single match ranked last of 4
    dist = np.array([[0.9, 0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.9]])
    cmc, mAP, mINP = evaluate_rank(dist, [1, 2], [1, 3, 4, 2], [0, 0], [1, 1, 1, 1], max_rank=5)
    np.testing.assert_allclose(cmc, [0, 0, 0, 1, 1])
    assert mAP == pytest.approx(0.25)
    assert mINP == pytest.approx(0.25)


def test_mixed_queries_average() -> None:
    # q0 (pid 1): ranked [1, 2, 1] -> AP (1 + 2/3)/2 = 5/6, INP 2/3, first rank 1
    # q1 (pid 2): order [0, 2, 1] -> ranked [1, 1, 2] -> AP 1/3, INP 1/3, first rank 3
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.3, 0.2]])
    g_pids = [1, 2, 1]
    cmc, mAP, mINP = evaluate_rank(dist, [1, 2], g_pids, [0, 0], [1, 1, 1], max_rank=3)
    np.testing.assert_allclose(cmc, [0.5, 0.5, 1.0])
    assert mAP == pytest.approx((5 / 6 + 1 / 3) / 2)
    assert mINP == pytest.approx((2 / 3 + 1 / 3) / 2)


def test_cmc_longer_than_gallery_stays_at_final_value() -> None:
    dist = np.array([[0.2, 0.1]])
    cmc, _, _ = evaluate_rank(dist, [1], [1, 2], [0], [1, 1], max_rank=5)
    np.testing.assert_allclose(cmc, [0, 1, 1, 1, 1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_per_query_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_q, num_g = 40, 120
    # integer-valued distances make ties frequent, exercising the stable sort
    dist = rng.integers(0, 20, size=(num_q, num_g)).astype(np.float32)
    q_pids = rng.integers(0, 8, size=num_q)
    g_pids = rng.integers(0, 8, size=num_g)
    q_cams = rng.integers(0, 3, size=num_q)
    g_cams = rng.integers(0, 3, size=num_g)
    expected = _reference(dist, q_pids, g_pids, q_cams, g_cams, 30)
    cmc, mAP, mINP = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=30)
    np.testing.assert_allclose(cmc, expected[0])
    assert mAP == pytest.approx(expected[1])
    assert mINP == pytest.approx(expected[2])


def test_chunking_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_reid.evaluation import metrics

    rng = np.random.default_rng(5)
    dist = rng.random((37, 50))
    args = (dist, rng.integers(0, 5, 37), rng.integers(0, 5, 50), rng.integers(0, 2, 37), rng.integers(0, 2, 50))
    whole = evaluate_rank(*args, max_rank=10)
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 150)  # 3 queries per chunk
    chunked = evaluate_rank(*args, max_rank=10)
    np.testing.assert_allclose(whole[0], chunked[0])
    assert whole[1:] == pytest.approx(chunked[1:])


def test_single_gallery_shot_cmc() -> None:
    # query pid 1; gallery ranked [2, 2, 1, 1, 3]; with one image per id, pid 2 always ranks
    # above pid 1 and pid 3 always below -> the match is at rank 2 in every repeat
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    cmc, mAP, _ = evaluate_rank(dist, [1], [2, 2, 1, 1, 3], [0], [1, 1, 1, 1, 1], max_rank=3,
                                cuhk03_single_gallery_shot=True)
    np.testing.assert_allclose(cmc, [0, 1, 1])
    # mAP stays the all-gallery value: matches at ranks 3 and 4 -> (1/3 + 2/4) / 2
    assert mAP == pytest.approx((1 / 3 + 2 / 4) / 2)


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        (dict(distmat=np.zeros(3)), "2-D"),
        (dict(q_pids=[1]), "q_pids has 1 entries"),
        (dict(g_camids=[0, 0]), "g_camids has 2 entries"),
        (dict(distmat=np.array([[0.1, np.nan, 0.2], [0.1, 0.2, np.inf]])), "NaN or infinite"),
        (dict(q_pids=[1.5, 2.0]), "integers"),
        (dict(max_rank=0), "max_rank"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs: dict, phrase: str) -> None:
    args = dict(distmat=np.zeros((2, 3)), q_pids=[1, 2], g_pids=[1, 2, 3], q_camids=[0, 0], g_camids=[1, 1, 1])
    args.update(kwargs)
    with pytest.raises(InvalidInputError, match=phrase) as info:
        evaluate_rank(**args)
    assert str(info.value).endswith(".") and "\n" not in str(info.value)


def test_no_valid_query_at_all_is_an_error() -> None:
    with pytest.raises(InvalidInputError, match="None of the 1 queries"):
        evaluate_rank(np.zeros((1, 2)), [1], [2, 3], [0], [0, 0])


def test_metrics_table_formats_percentages() -> None:
    cmc = np.linspace(0.5, 1.0, 20)
    metrics = metrics_percent(cmc, 0.4321, 0.1)
    assert set(metrics) == {"rank1", "rank5", "rank10", "rank20", "mAP", "mINP"}
    assert metrics["rank5"] == pytest.approx(cmc[4] * 100)
    table = metrics_table(cmc, 0.4321, 0.1)
    lines = table.splitlines()
    assert lines[0].split() == ["Rank-1", "|", "Rank-5", "|", "Rank-10", "|", "Rank-20", "|", "mAP", "|", "mINP"]
    assert "43.21" in lines[2] and "50.00" in lines[2] and "10.00" in lines[2]
    assert format_metrics_table({"rank1": 12.345}).splitlines()[2].strip() == "12.35"


@pytest.mark.slow
def test_market1501_sized_matrix() -> None:
    rng = np.random.default_rng(0)
    num_q, num_g, num_ids = 3368, 19732, 751
    q_pids = rng.integers(1, num_ids + 1, num_q)
    g_pids = np.concatenate([np.repeat(np.arange(1, num_ids + 1), 22), np.zeros(num_g - 22 * num_ids, int)])
    q_cams, g_cams = rng.integers(0, 6, num_q), rng.integers(0, 6, num_g)
    dist = rng.random((num_q, num_g), dtype=np.float32) + (q_pids[:, None] != g_pids[None, :]) * 0.5
    start = time.perf_counter()
    cmc, mAP, mINP = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    elapsed = time.perf_counter() - start
    print(f"Market-1501-sized evaluation: {elapsed:.2f} s")
    assert cmc.shape == (50,) and np.all(np.diff(cmc) >= 0)
    assert 0.0 < mAP <= 1.0 and 0.0 < mINP <= 1.0
    assert cmc[0] > 0.9  # matches are biased to be nearer


def test_fast_float32_sort_is_the_stable_sort() -> None:
    from edge_reid.evaluation.metrics import _stable_argsort

    rng = np.random.default_rng(3)
    dist = rng.normal(size=(6, 500)).astype(np.float32)
    dist[:, ::3] = 0.5
    dist[:, 1::7] = -0.0
    dist[:, 2::7] = 0.0
    dist[:, 5::11] = -3.0
    np.testing.assert_array_equal(_stable_argsort(dist), np.argsort(dist, axis=1, kind="stable"))
    # other dtypes: rows with ties (0, 2) re-sorted stably, tie-free rows (1) quicksorted
    wide = rng.normal(size=(3, 300))
    wide[0, ::4] = 1.0
    wide[2, 5::9] = -2.0
    np.testing.assert_array_equal(_stable_argsort(wide), np.argsort(wide, axis=1, kind="stable"))
    ints = rng.integers(0, 4, size=(4, 50))
    np.testing.assert_array_equal(_stable_argsort(ints), np.argsort(ints, axis=1, kind="stable"))
