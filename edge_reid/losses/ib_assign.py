"""Soft assignments to class centroids and the information estimates the IBB loss logs.

Used by :mod:`edge_reid.losses.ibb`: ``soft_assign`` (phi = softmax(-beta ||f - c||^2) over the
valid classes), its normalised entropy, the bisection that picks beta for a target entropy, and
the mutual information of a joint count table.
"""

from __future__ import annotations

import math

import torch


def soft_assign(features: torch.Tensor, centroids: torch.Tensor, valid: torch.Tensor, beta: float) -> torch.Tensor:
    """B x K soft assignments softmax_a(-beta ||f_i - c_a||^2) over the classes marked ``valid``."""
    d2 = torch.cdist(features, centroids).pow(2)
    logits = (-beta * d2).masked_fill(~valid[None, :], float("-inf"))
    return torch.softmax(logits, dim=1)


def normalised_entropy(phi: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-row entropy of the assignments divided by log(number of valid classes), in [0, 1]."""
    k = max(int(valid.sum()), 2)
    plogp = torch.where(phi > 0, phi * phi.clamp_min(1e-30).log(), torch.zeros_like(phi))
    return -plogp.sum(1) / math.log(k)


def calibrate_beta(features: torch.Tensor, centroids: torch.Tensor, valid: torch.Tensor, target: float,
                   low: float = 1e-2, high: float = 1e6, steps: int = 60) -> float:
    """The beta whose assignments have mean normalised entropy ``target`` (bisection in log beta)."""
    lo, hi = math.log(low), math.log(high)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        h = float(normalised_entropy(soft_assign(features, centroids, valid, math.exp(mid)), valid).mean())
        if h > target:
            lo = mid  # still too flat: sharpen
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def mutual_information(joint: torch.Tensor) -> float:
    """I(A; B) in nats of a joint distribution given as (unnormalised) non-negative counts."""
    total = float(joint.sum())
    if total <= 0:
        return 0.0
    p = joint.double() / total
    pa = p.sum(1, keepdim=True)
    pb = p.sum(0, keepdim=True)
    nz = p > 0
    return float((p[nz] * (p[nz] / (pa @ pb)[nz]).log()).sum())
