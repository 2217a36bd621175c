"""FIDI against a direct numpy evaluation of the spec's formula, and the direction of its gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_reid.errors import EdgeReidError
from edge_reid.losses import LOSSES, fidi_loss


def _numpy_fidi(x: np.ndarray, y: np.ndarray, alpha: float, beta: float, eps: float = 1e-8) -> float:
    f = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(f)
    a_terms, b_terms = [], []
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d = np.sqrt(np.sum((f[i] - f[j]) ** 2) + 1e-8)
            k = min(max(1.0 if y[i] == y[j] else 0.0, eps), 1 - eps)
            u = min(max(np.exp(-beta * d), eps), 1 - eps)
            a_terms.append(u * np.log(max(alpha * u, eps) / max((alpha - 1) * u + k, eps)))
            b_terms.append(k * np.log(max(alpha * k, eps) / max((alpha - 1) * k + u, eps)))
    return float(np.mean(a_terms) + np.mean(b_terms))


@pytest.mark.parametrize("alpha,beta", [(1.05, 0.5), (1.5, 2.0)])
def test_fidi_matches_numpy_formula(alpha, beta):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 5))
    y = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    loss = LOSSES.get("fidi")(alpha=alpha, beta=beta)({"features": torch.tensor(x, dtype=torch.float64)}, torch.tensor(y))
    assert loss.item() == pytest.approx(_numpy_fidi(x, y, alpha, beta), rel=1e-5)


def _pair_distances(f: torch.Tensor, y: torch.Tensor):
    f = torch.nn.functional.normalize(f, dim=1)
    d = torch.cdist(f, f)
    same = y[:, None] == y[None, :]
    off = ~torch.eye(len(y), dtype=torch.bool)
    return d[same & off].mean().item(), d[~same].mean().item()


def test_fidi_gradient_step_pulls_positives_and_pushes_negatives():
    g = torch.Generator().manual_seed(4)
    emb = torch.randn(12, 16, generator=g, requires_grad=True)
    y = torch.arange(4).repeat_interleave(3)
    pos0, neg0 = _pair_distances(emb.detach(), y)
    for _ in range(5):  # plain gradient descent on the embeddings
        emb.grad = None
        fidi_loss(emb, y).backward()
        with torch.no_grad():
            emb -= 0.5 * emb.grad
    pos1, neg1 = _pair_distances(emb.detach(), y)
    assert pos1 < pos0
    assert neg1 > neg0


def test_fidi_feature_key_and_errors():
    x, y = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    loss = LOSSES.get("fidi")(feature_key="embeddings")
    assert loss.requires == ("embeddings",)
    assert torch.isfinite(loss({"embeddings": x}, y))
    with pytest.raises(EdgeReidError, match="'fidi'.*'embeddings'"):
        loss({"features": x}, y)
    with pytest.raises(EdgeReidError, match="alpha"):
        LOSSES.get("fidi")(alpha=1.0)


def test_fidi_gradient_finite_with_identical_embeddings():
    x = torch.ones(4, 3, requires_grad=True)
    fidi_loss(x, torch.tensor([0, 0, 1, 1])).backward()
    assert torch.isfinite(x.grad).all()
