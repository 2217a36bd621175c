"""Cross-entropy, triplet (batch-hard vs a brute-force loop), semantic pseudo-labels, output checks."""

from __future__ import annotations

import math

import pytest
import torch

from edge_reid.errors import EdgeReidError
from edge_reid.losses import LOSSES, semantic_pseudo_labels


def _pk_batch(p: int = 4, k: int = 3, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(p * k, d, generator=g)
    targets = torch.arange(p).repeat_interleave(k)
    return feats, targets


def test_registry_lists_builtin_losses():
    assert {"cross_entropy", "triplet", "fidi", "semantic"} <= set(LOSSES.names())


def test_cross_entropy_label_smoothing_matches_manual():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 5, generator=g)
    targets = torch.tensor([0, 1, 2, 3, 4, 0])
    loss = LOSSES.get("cross_entropy")(label_smoothing=0.2)({"logits": logits}, targets)
    logp = torch.log_softmax(logits, dim=1)
    q = torch.full_like(logp, 0.2 / 5)
    q[torch.arange(6), targets] += 0.8
    expected = -(q * logp).sum(dim=1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert LOSSES.get("cross_entropy")().label_smoothing == 0.1


def _brute_force_triplet(x: torch.Tensor, y: torch.Tensor, margin, soft: bool) -> float:
    n = x.shape[0]
    losses = []
    for a in range(n):
        pos = [math.dist(x[a].tolist(), x[j].tolist()) for j in range(n) if y[j] == y[a]]
        neg = [math.dist(x[a].tolist(), x[j].tolist()) for j in range(n) if y[j] != y[a]]
        if not neg:
            continue
        gap = max(pos) - min(neg)
        losses.append(math.log1p(math.exp(gap)) if soft else max(0.0, gap + margin))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("margin,soft", [(0.3, False), (5.0, False), (None, True)])
def test_triplet_batch_hard_matches_brute_force(margin, soft):
    feats, targets = _pk_batch()
    loss = LOSSES.get("triplet")(margin=margin)({"features": feats}, targets)
    assert loss.item() == pytest.approx(_brute_force_triplet(feats, targets, margin, soft), rel=1e-5, abs=1e-6)


def test_triplet_normalize_and_soft_margin_flag():
    feats, targets = _pk_batch(seed=3)
    normed = torch.nn.functional.normalize(feats, dim=1)
    loss = LOSSES.get("triplet")(soft_margin=True, normalize=True)({"features": feats}, targets)
    assert loss.item() == pytest.approx(_brute_force_triplet(normed, targets, None, True), rel=1e-5)


def test_missing_output_names_key_and_loss():
    feats, targets = _pk_batch()
    with pytest.raises(EdgeReidError, match="'triplet'.*'features'"):
        LOSSES.get("triplet")()({"logits": feats}, targets)
    with pytest.raises(EdgeReidError, match="'semantic'.*'semantic_logits'"):
        LOSSES.get("semantic")()({"fused_map": torch.zeros(1, 2, 4, 2)}, targets)


def test_bad_option_values_raise():
    with pytest.raises(EdgeReidError, match="label_smoothing"):
        LOSSES.get("cross_entropy")(label_smoothing=1.5)
    with pytest.raises(EdgeReidError, match="margin"):
        LOSSES.get("triplet")(margin=-1)
    with pytest.raises(EdgeReidError, match="Unknown loss term 'nope'"):
        LOSSES.get("nope")


def test_semantic_pseudo_labels_on_constructed_map():
    # 10 rows x 2 cols; row centres (h + .5)/10: rows 0-3 upper, 4-7 lower, 8-9 shoes.
    fmap = torch.zeros(2, 3, 10, 2)
    fmap[0, 0, :, 0] = 5.0  # image 0: left column strong -> foreground, right column background
    fmap[0, 0, :, 1] = 1.0
    fmap[1, 1, 2, 1] = 4.0  # image 1: one strong position (row 2, col 1) and one medium one
    fmap[1, 1, 9, 0] = 4.0
    labels = semantic_pseudo_labels(fmap, k=0.5)
    assert labels.shape == (2, 10, 2) and labels.dtype == torch.long
    expected0 = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    assert torch.equal(labels[0, :, 0], expected0)
    assert torch.all(labels[0, :, 1] == 3)
    expected1 = torch.full((10, 2), 3, dtype=torch.long)
    expected1[2, 1] = 0
    expected1[9, 0] = 2
    assert torch.equal(labels[1], expected1)


def test_semantic_pseudo_labels_threshold_uses_k_and_flat_map_is_background():
    # norms 0..9 in one column: mean 4.5, population std ~2.87; k moves the threshold.
    fmap = torch.arange(10, dtype=torch.float32).view(1, 1, 10, 1)
    norms = fmap.flatten()
    for k in (0.0, 0.5, 1.0):
        thr = norms.mean() + k * norms.std(unbiased=False)
        fg = semantic_pseudo_labels(fmap, k=k)[0, :, 0] != 3
        assert torch.equal(fg, norms > thr)
    assert torch.all(semantic_pseudo_labels(torch.ones(1, 4, 5, 3)) == 3)


def test_semantic_loss_is_plain_ce_and_no_grad_through_labels():
    g = torch.Generator().manual_seed(2)
    fused = torch.rand(2, 8, 8, 4, generator=g, requires_grad=True)
    logits = torch.randn(2, 4, 8, 4, generator=g, requires_grad=True)
    loss = LOSSES.get("semantic")()({"semantic_logits": logits, "fused_map": fused}, torch.zeros(2, dtype=torch.long))
    labels = semantic_pseudo_labels(fused)
    expected = torch.nn.functional.cross_entropy(logits, labels)  # Eq. 11: no label smoothing by default
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    assert fused.grad is None and logits.grad is not None
