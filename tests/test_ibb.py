"""IBB loss: finite values, Q(y|a) a distribution, centroids equal to a direct computation,
a weights_only round trip, and the composer wiring."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from edge_reid.errors import EdgeReidError
from edge_reid.losses import LOSSES, LossComposer
from edge_reid.losses.ibb import IBBLoss

K, D, DX = 4, 6, 5


def _batches(n: int = 3, per_class: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = torch.arange(K).repeat_interleave(per_class)
        emb = torch.randn(len(y), D, generator=g) + 2.0 * F.one_hot(y, D).float()
        stem = torch.randn(len(y), DX, generator=g)
        out.append(({"embeddings": emb.requires_grad_(), "stem_features": stem}, y))
    return out


def test_ibb_is_finite_and_differentiable() -> None:
    loss = IBBLoss(num_classes=K)
    for outputs, y in _batches():
        value = loss(outputs, y)
        assert value.dim() == 0 and math.isfinite(float(value.detach()))
    loss.on_epoch_end(0)
    outputs, y = _batches(1, seed=3)[0]
    value = loss(outputs, y)
    value.backward()
    assert math.isfinite(float(value.detach())) and float(outputs["embeddings"].grad.abs().sum()) > 0


def test_variational_table_is_a_distribution_and_uniform_first() -> None:
    loss = IBBLoss(num_classes=K)
    assert loss.q_table is None  # uniform during the first epoch
    for outputs, y in _batches():
        loss(outputs, y)
    loss.on_epoch_end(0)
    q = loss.q_table
    assert q.shape == (K, K) and bool((q >= 0).all())
    assert torch.allclose(q.sum(1), torch.ones(K, dtype=q.dtype))
    # Separated classes: each centroid's row puts most mass on its own class.
    assert bool((q.argmax(1) == torch.arange(K)).all())


def test_centroids_match_direct_computation() -> None:
    batches = _batches()
    loss = IBBLoss()  # num_classes inferred from the labels
    for outputs, y in batches:
        loss(outputs, y)
    loss.on_epoch_end(0)
    emb = torch.cat([F.normalize(o["embeddings"].detach(), dim=1) for o, _ in batches])
    stem = torch.cat([F.normalize(o["stem_features"], dim=1) for o, _ in batches])
    ys = torch.cat([y for _, y in batches])
    for c in range(K):
        assert torch.allclose(loss.centroid_f[c].float(), emb[ys == c].mean(0), atol=1e-6)
        assert torch.allclose(loss.centroid_x[c].float(), stem[ys == c].mean(0), atol=1e-6)


def test_first_epoch_bound_matches_formula() -> None:
    (outputs, y), = _batches(1)
    value = IBBLoss(num_classes=K)(outputs, y)
    f = F.normalize(outputs["embeddings"].detach(), dim=1)
    x = F.normalize(outputs["stem_features"], dim=1)
    onehot = F.one_hot(y, K).float()
    cf, cx = (onehot.t() @ f) / onehot.sum(0)[:, None], (onehot.t() @ x) / onehot.sum(0)[:, None]
    phi_f = torch.softmax(-torch.cdist(f, cf) ** 2, 1)
    phi_x = torch.softmax(-torch.cdist(x, cx) ** 2, 1)
    direct = (phi_f.sum(1) * (phi_x * phi_x.log()).sum(1) + math.log(K)).mean()
    assert abs(float(value.detach()) - float(direct)) < 1e-5


def test_epoch_stats_and_state_round_trip() -> None:
    loss = IBBLoss(num_classes=K)
    for outputs, y in _batches():
        loss(outputs, y)
    running = loss.epoch_stats()
    assert set(running) >= {"ibb", "ib_loss", "i_fx", "i_fy"} and running["i_fy"] > 0
    loss.on_epoch_end(0)
    buf = io.BytesIO()
    torch.save(loss.state_dict(), buf)
    buf.seek(0)
    restored = IBBLoss(num_classes=K)
    restored.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(restored.q_table, loss.q_table)
    assert restored.epoch_stats() == loss.epoch_stats()
    outputs, y = _batches(1, seed=5)[0]
    assert torch.allclose(restored(outputs, y), loss(outputs, y))


def test_composer_builds_ce_triplet_ibb() -> None:
    assert "ibb" in LOSSES.names()
    composer = LossComposer.from_config({"terms": [
        {"name": "cross_entropy", "label_smoothing": 0.1},
        {"name": "triplet", "margin": 0.3},
        {"name": "ibb", "weight": 0.01},
    ]})
    (outputs, y), = _batches(1)
    outputs = dict(outputs, logits=torch.randn(len(y), K), features=outputs["embeddings"])
    result = composer(outputs, y)
    assert result.weights["ibb"] == 0.01 and math.isfinite(float(result.total))
    composer.on_epoch_end(0)
    assert composer.terms["ibb"].epochs_done == 1


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(EdgeReidError, match="stem_features"):
        IBBLoss()({"embeddings": torch.randn(2, 3)}, torch.tensor([0, 1]))
    with pytest.raises(EdgeReidError, match="num_classes"):
        IBBLoss(num_classes=2)({"embeddings": torch.randn(2, 3), "stem_features": torch.randn(2, 3)}, torch.tensor([0, 4]))
    with pytest.raises(EdgeReidError, match="beta"):
        IBBLoss(beta=-1)
