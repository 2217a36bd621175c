"""DCS-Attention: self-attention whose weights use only the channels a learned mask selects.

For a feature map X (B x C x H x W) seen as N = H*W tokens of C channels
(``shared/specs/dcs-attention.md``):

* sampling logits Theta = Linear(C -> C) applied token-wise;
* training: M_soft = sigmoid((Theta + g1 - g2) / tau) with Gumbel noise, the forward uses the
  hard mask 1[M_soft > 0.5] and the backward the soft one (straight-through);
  inference: M = 1[Theta > 0], no noise;
* Y_att = softmax((X*M)(X*M)^T / sqrt(C)) X via ``kernels.masked_channel_attention``;
* Y = X + BN0(DWConv3x3(Y_att)), BN0's gamma and beta start at 0 so the block starts as identity.

``vanilla=True`` is the ablation baseline: the same block with M = 1 (plain self-attention).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from edge_reid.errors import InvalidInputError
from kernels import masked_channel_attention


def sample_gumbel(shape: torch.Size, like: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise of ``shape`` on ``like``'s device and dtype."""
    u = torch.rand(shape, device=like.device, dtype=like.dtype)
    return -torch.log(-torch.log(u.clamp(eps, 1.0 - eps)))


def binary_gumbel_mask(theta: torch.Tensor, tau: float, training: bool) -> torch.Tensor:
    """The channel mask from sampling logits ``theta``.

    Training: hard mask 1[sigmoid((theta + g1 - g2)/tau) > 0.5] in the forward pass, gradient of
    the soft mask in the backward pass. Otherwise: 1[theta > 0] (deterministic).
    """
    if not training:
        return (theta > 0).to(theta.dtype)
    noise = sample_gumbel(theta.shape, theta) - sample_gumbel(theta.shape, theta)
    soft = torch.sigmoid((theta + noise) / tau)
    hard = (soft > 0.5).to(theta.dtype)
    return hard - soft.detach() + soft


class DCSAttention(nn.Module):
    """Differentiable Channel Selection attention block for a B x C x H x W feature map.

    After each forward, ``last_mask`` holds the (detached) B x N x C mask that was used and
    :meth:`kept_fraction` the share of channels it kept, for logging.
    """

    def __init__(self, channels: int, tau: float = 1.0, vanilla: bool = False) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
            raise InvalidInputError(f"DCSAttention needs a positive integer channel count, got {channels!r}.")
        if not float(tau) > 0:
            raise InvalidInputError(f"DCSAttention option tau must be a positive number, got {tau!r}.")
        self.channels = channels
        self.tau = float(tau)
        self.vanilla = bool(vanilla)
        self.sampler: Optional[nn.Linear] = None if self.vanilla else nn.Linear(channels, channels)
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.last_mask: Optional[torch.Tensor] = None

    def channel_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """The B x N x C mask for ``tokens`` (B x N x C) in the current train/eval mode."""
        if self.sampler is None:
            return torch.ones_like(tokens)
        theta = self.sampler(tokens)
        return binary_gumbel_mask(theta, self.tau, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise InvalidInputError(
                f"DCSAttention({self.channels}) expects a B x {self.channels} x H x W map, got {tuple(x.shape)}."
            )
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # B x N x C
        mask = self.channel_mask(tokens)
        self.last_mask = mask.detach()
        att = masked_channel_attention(tokens.contiguous(), mask.contiguous(), 1.0 / c**0.5)
        att = att.transpose(1, 2).reshape(b, c, h, w)
        return x + self.bn(self.dwconv(att))

    def kept_fraction(self) -> float:
        """Share of channels the last mask kept (1.0 before any forward and for the vanilla block)."""
        if self.last_mask is None:
            return 1.0
        return float(self.last_mask.float().mean())

    def extra_repr(self) -> str:
        return f"channels={self.channels}, tau={self.tau}, vanilla={self.vanilla}"
