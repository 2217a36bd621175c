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


def _coloured_batch(num_ids: int = 4, per_id: int = 3, seed: int = 0):
    """Images whose identity sets the mean colour (so even a random network separates them a little)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(num_ids).repeat_interleave(per_id)
    colours = torch.rand(num_ids, 3, 1, 1, generator=g)
    images = (colours[y] + 0.15 * torch.rand(len(y), 3, 64, 32, generator=g)).clamp(0, 1)
    return images, y


def test_initialised_bound_has_a_gradient_on_the_embedding_path_at_the_first_step() -> None:
    from edge_reid.models import build_model

    torch.manual_seed(0)
    model = build_model("dcs_mobilenetv2", 4, input_size=(64, 32)).train()
    images, y = _coloured_batch()
    with torch.no_grad():
        first = model(images)
    fresh = IBBLoss()
    assert all(p.grad is None for p in model.parameters())
    loss = IBBLoss()
    stats = loss.initialise({k: first[k] for k in ("embeddings", "stem_features")}, y)
    assert loss.beta_f > 1.0 and 0.4 < stats["entropy_f"] < 0.6  # auto beta: not flat (beta 1 would be ~1)
    out = model(images)
    loss(out, y).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    backbone = [n for n in grads if n.startswith("stages.")]
    assert max(float(grads[n].abs().max()) for n in backbone if grads[n] is not None) > 1e-6
    assert float(grads["head.bn.weight"].abs().max()) > 1e-6  # BNNeck
    assert grads["head.classifier.weight"] is None  # the classifier is not what the bound trains
    # without the initial pass (uniform Q) the same first step has no gradient at all
    model.zero_grad(set_to_none=True)
    fresh(model(images), y).backward()
    assert max(float(p.grad.abs().max()) for p in model.parameters() if p.grad is not None) < 1e-6


def test_auto_beta_reaches_the_target_entropy_and_survives_a_round_trip() -> None:
    outputs = {"embeddings": torch.cat([o["embeddings"].detach() for o, _ in _batches()]),
               "stem_features": torch.cat([o["stem_features"] for o, _ in _batches()])}
    y = torch.cat([t for _, t in _batches()])
    loss = IBBLoss(target_entropy=0.3)
    stats = loss.initialise(outputs, y)
    assert stats["entropy_f"] == pytest.approx(0.3, abs=1e-3) and stats["entropy_x"] == pytest.approx(0.3, abs=1e-3)
    assert torch.allclose(loss.q_table.sum(1), torch.ones(K, dtype=loss.q_table.dtype))
    loss(outputs, y)
    assert 0.0 < loss.running_stats()["entropy_f"] < 1.0
    buf = io.BytesIO()
    torch.save(loss.state_dict(), buf)
    buf.seek(0)
    restored = IBBLoss()
    restored.load_state_dict(torch.load(buf, weights_only=True))
    assert (restored.beta_f, restored.beta_x) == (loss.beta_f, loss.beta_x)
    with pytest.raises(EdgeReidError, match="target_entropy"):
        IBBLoss(target_entropy=1.5)
