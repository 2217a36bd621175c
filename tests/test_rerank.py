"""k-reciprocal re-ranking: shape, limits, symmetry and that it helps on clustered data."""

from __future__ import annotations

import numpy as np
import pytest

from edge_reid.errors import InvalidInputError
from edge_reid.evaluation.metrics import evaluate_rank
from edge_reid.evaluation.rerank import re_ranking


def _sq_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def _clustered(seed: int, ids: int = 12, per_id: int = 6, dim: int = 16, noise: float = 0.6):
    """Queries (one per id, camera 0) and a gallery (per_id images per id, cameras 1-2) around id centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim))
    g_pids = np.repeat(np.arange(ids), per_id)
    g_cams = np.tile(np.arange(per_id) % 2 + 1, ids)
    q_pids = np.arange(ids)
    q_cams = np.zeros(ids, dtype=int)
    gf = centres[g_pids] + rng.normal(scale=noise, size=(g_pids.size, dim))
    qf = centres[q_pids] + rng.normal(scale=noise, size=(ids, dim))
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def test_shape_dtype_and_lambda_one_is_the_row_max_normalised_original() -> None:
    qf, gf, *_ = _clustered(0)
    qg = _sq_dist(qf, gf)
    out = re_ranking(qg, _sq_dist(qf, qf), _sq_dist(gf, gf), k1=6, k2=3, lambda_value=1.0)
    assert out.shape == qg.shape and out.dtype == np.float32
    # each query row divided by the maximum of its full (query + gallery) row
    row_max = np.maximum(qg.max(axis=1), _sq_dist(qf, qf).max(axis=1))[:, None]
    np.testing.assert_allclose(out, qg / row_max, rtol=1e-5)


def _spec_reranking(feats_q: np.ndarray, feats_g: np.ndarray, k1: int, k2: int, lam: float) -> np.ndarray:
    """The evaluation spec's re-ranking written out plainly (dense, loops, sets), independent of rerank.py."""
    feats = np.concatenate([feats_q, feats_g]).astype(np.float64)
    n, nq = feats.shape[0], feats_q.shape[0]
    dist = _sq_dist(feats, feats)
    dist = dist / dist.max(axis=1, keepdims=True)  # row-max normalised, used everywhere below
    order = np.argsort(dist, axis=1, kind="stable")

    def k_reciprocal(i: int, k: int) -> set:
        return {int(j) for j in order[i, : k + 1] if i in set(order[j, : k + 1].tolist())}

    vectors = np.zeros((n, n))
    for i in range(n):
        base = k_reciprocal(i, k1)
        expanded = set(base)
        for c in base:
            cand = k_reciprocal(c, int(round(k1 / 2)))
            if len(cand & base) > 2.0 / 3.0 * len(cand):
                expanded |= cand
        idx = sorted(expanded)
        w = np.exp(-dist[i, idx])
        vectors[i, idx] = w / w.sum()
    vectors = np.stack([vectors[order[i, :k2]].mean(axis=0) for i in range(n)])
    jaccard = np.zeros((nq, n))
    for i in range(nq):
        jaccard[i] = 1.0 - np.minimum(vectors[i], vectors).sum(1) / np.maximum(vectors[i], vectors).sum(1)
    final = (1.0 - lam) * jaccard + lam * dist[:nq]
    return final[:, nq:]


@pytest.mark.parametrize("unit_norm", [True, False])
def test_matches_an_independent_implementation_of_the_spec(unit_norm: bool) -> None:
    # raw features: distances >> 1, where using the un-normalised distance in the mix swamps the Jaccard term
    qf, gf, *_ = _clustered(5, ids=8, per_id=5, noise=0.5)
    qf, gf = qf * 3.0, gf * 3.0
    if unit_norm:
        qf = qf / np.linalg.norm(qf, axis=1, keepdims=True)
        gf = gf / np.linalg.norm(gf, axis=1, keepdims=True)
    got = re_ranking(_sq_dist(qf, gf), _sq_dist(qf, qf), _sq_dist(gf, gf), k1=6, k2=3, lambda_value=0.3)
    want = _spec_reranking(qf, gf, k1=6, k2=3, lam=0.3)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_jaccard_part_is_a_symmetric_distance_in_unit_range() -> None:
    # with the gallery as its own query set, lambda=0 gives the Jaccard distances alone
    _, gf, *_ = _clustered(1)
    gg = _sq_dist(gf, gf)
    jac = re_ranking(gg, gg, gg, k1=6, k2=3, lambda_value=0.0)
    np.testing.assert_allclose(jac, jac.T, atol=1e-6)
    assert np.all(jac >= -1e-6) and np.all(jac <= 1 + 1e-6)
    np.testing.assert_allclose(np.diag(jac), 0.0, atol=1e-6)
    # far-apart identities share no neighbours: the largest possible Jaccard distance occurs
    assert jac.max() == pytest.approx(1.0, abs=1e-6)


def test_reranking_keeps_or_improves_map_on_clustered_data() -> None:
    gains = []
    for seed in range(4):
        qf, gf, q_pids, g_pids, q_cams, g_cams = _clustered(seed)
        qg = _sq_dist(qf, gf)
        rr = re_ranking(qg, _sq_dist(qf, qf), _sq_dist(gf, gf), k1=6, k2=3)
        before = evaluate_rank(qg, q_pids, g_pids, q_cams, g_cams, max_rank=10)[1]
        after = evaluate_rank(rr, q_pids, g_pids, q_cams, g_cams, max_rank=10)[1]
        assert after >= before - 1e-9
        gains.append(after - before)
    assert sum(gains) > 0.0


def test_default_parameters_run_on_a_small_set() -> None:
    # k1=20 larger than some neighbourhoods must still work
    qf, gf, *_ = _clustered(2, ids=4, per_id=3)
    out = re_ranking(_sq_dist(qf, gf), _sq_dist(qf, qf), _sq_dist(gf, gf))
    assert out.shape == (4, 12) and np.all(np.isfinite(out))


@pytest.mark.parametrize(
    "q_q, lam, phrase",
    [
        (np.zeros((3, 3)), 0.3, "do not match"),
        (np.zeros((2, 2)), 1.5, "lambda"),
        (np.full((2, 2), np.nan), 0.3, "NaN"),
    ],
)
def test_bad_input_is_a_clear_error(q_q: np.ndarray, lam: float, phrase: str) -> None:
    with pytest.raises(InvalidInputError, match=phrase):
        re_ranking(np.zeros((2, 4)), q_q, np.zeros((4, 4)), lambda_value=lam)
