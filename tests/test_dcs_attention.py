"""DCS-Attention block: identity at init, deterministic eval mask, straight-through gradient,
masked channels do not influence the attention weights."""

from __future__ import annotations

import pytest
import torch

from edge_reid.errors import EdgeReidError
from edge_reid.models.dcs_attention import DCSAttention, binary_gumbel_mask
from kernels import masked_channel_attention


def _block(channels: int = 12, **kw) -> DCSAttention:
    torch.manual_seed(0)
    return DCSAttention(channels, **kw)


@pytest.mark.parametrize("train", [True, False])
def test_block_is_identity_at_init(train: bool) -> None:
    block = _block().train(train)
    x = torch.randn(2, 12, 8, 4)
    assert torch.equal(block(x), x)


def test_eval_mask_is_theta_positive_and_deterministic() -> None:
    block = _block().eval()
    x = torch.randn(2, 12, 8, 4)
    block(x)
    first = block.last_mask.clone()
    block(x)
    assert torch.equal(first, block.last_mask)
    theta = block.sampler(x.flatten(2).transpose(1, 2))
    assert torch.equal(first, (theta > 0).float())
    assert 0.0 < block.kept_fraction() < 1.0


def test_training_mask_is_binary_and_random() -> None:
    theta = torch.zeros(4, 16, 12)
    torch.manual_seed(1)
    m1 = binary_gumbel_mask(theta, 1.0, training=True)
    m2 = binary_gumbel_mask(theta, 1.0, training=True)
    assert set(m1.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(m1, m2)  # Gumbel noise: logits 0 give coin flips


def test_straight_through_gradient_reaches_sampler() -> None:
    block = _block().train()
    torch.nn.init.ones_(block.bn.weight)  # past the identity start, so the attention path matters
    x = torch.randn(2, 12, 8, 4)
    (block(x) ** 2).sum().backward()
    grad = block.sampler.weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


def test_masked_channel_has_no_influence_on_attention_weights() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 10, 6)
    mask = torch.ones(2, 10, 6)
    mask[..., 2] = 0.0
    y = masked_channel_attention(x, mask)
    x2 = x.clone()
    x2[..., 2] += 5.0 * torch.randn(2, 10)
    y2 = masked_channel_attention(x2, mask)
    others = [c for c in range(6) if c != 2]
    # Y[..., c] = A X[..., c]: other channels are unchanged iff the attention weights A are unchanged.
    assert torch.allclose(y[..., others], y2[..., others], atol=1e-5)
    # Control: the same perturbation of a kept channel does change the weights.
    y3 = masked_channel_attention(x2, torch.ones(2, 10, 6))
    y4 = masked_channel_attention(x, torch.ones(2, 10, 6))
    assert not torch.allclose(y3[..., others], y4[..., others], atol=1e-3)


def test_vanilla_block_keeps_every_channel() -> None:
    block = _block(vanilla=True).train()
    assert block.sampler is None
    block(torch.randn(1, 12, 4, 4))
    assert block.kept_fraction() == 1.0


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(EdgeReidError):
        DCSAttention(0)
    with pytest.raises(EdgeReidError):
        DCSAttention(8, tau=0.0)
    with pytest.raises(EdgeReidError, match="expects"):
        _block()(torch.randn(1, 5, 4, 4))
