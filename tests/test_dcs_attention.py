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


def _independent_attention(x: torch.Tensor, mask: torch.Tensor, form: str, key_stride: int) -> torch.Tensor:
    """Y_att of the spec's formulas with explicit float64 loops over tokens (no kernels code)."""
    b, c, h, w = x.shape
    xd, md = x.double(), mask.double().reshape(b, h, w, c)
    out = torch.zeros(b, c, h, w, dtype=torch.float64)
    for i in range(b):
        tok = [(r, s) for r in range(h) for s in range(w)]
        keys = [(r, s) for r, s in tok if r % key_stride == 0 and s % key_stride == 0] if form == "linear" else tok
        for r, s in tok:
            q = xd[i, :, r, s] * md[i, r, s]
            if form == "linear":
                acc = sum(float(q @ (xd[i, :, kr, ks] * md[i, kr, ks])) * xd[i, :, kr, ks] for kr, ks in keys)
                out[i, :, r, s] = acc / len(keys)
            else:
                logits = torch.stack([q @ (xd[i, :, kr, ks] * md[i, kr, ks]) for kr, ks in keys]) / c**0.5
                weights = torch.softmax(logits, 0)
                out[i, :, r, s] = sum(wk * xd[i, :, kr, ks] for wk, (kr, ks) in zip(weights, keys))
    return out


@pytest.mark.parametrize("form", ["linear", "softmax"])
@pytest.mark.parametrize("batch", [1, 3])
def test_both_forms_match_an_independent_float64_computation(form: str, batch: int) -> None:
    """Odd map (7 x 5), C = 20 (not a power of two), key_stride 2 (4 x 3 key positions)."""
    block = _block(20, form=form, key_stride=2).double().eval()
    x = torch.randn(batch, 20, 7, 5, dtype=torch.float64)
    tokens = x.flatten(2).transpose(1, 2)
    mask = block.channel_mask(tokens)
    assert 0 < float(mask.mean()) < 1  # a real selection, not all or nothing
    got = block.attend(x, mask)
    assert got.shape == x.shape
    assert torch.allclose(got, _independent_attention(x, mask, form, 2), atol=1e-10)


def test_linear_form_masked_channels_do_not_change_the_affinities() -> None:
    """Changing X on channels the mask drops changes V only: the affinity weights stay the same."""
    block = _block(6, form="linear", key_stride=1).double().eval()
    x = torch.randn(1, 6, 3, 3, dtype=torch.float64)
    mask = torch.zeros(1, 9, 6, dtype=torch.float64)
    mask[..., :3] = 1
    y = block.attend(x, mask)
    x2 = x.clone()
    x2[:, 3:] += 5.0  # dropped channels only: the output on kept channels is unchanged
    assert torch.allclose(block.attend(x2, mask)[:, :3], y[:, :3], atol=1e-10)


def test_bad_form_or_key_stride_is_a_clear_error() -> None:
    with pytest.raises(EdgeReidError, match="form"):
        DCSAttention(8, form="cosine")
    for bad in (0, -1, 2.0, True):
        with pytest.raises(EdgeReidError, match="key_stride"):
            DCSAttention(8, key_stride=bad)
