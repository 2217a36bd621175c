"""DCS-Attention: self-attention whose weights use only the channels a learned mask selects.

For a feature map X (B x C x H x W) seen as N = H*W tokens of C channels
(``shared/specs/dcs-attention.md``):

* sampling logits Theta = Linear(C -> C) applied token-wise;
* training: M_soft = sigmoid((Theta + g1 - g2) / tau) with Gumbel noise, the forward uses the
  hard mask 1[M_soft > 0.5] and the backward the soft one (straight-through);
  inference: M = 1[Theta > 0], no noise;
* Y_att in one of two forms (option ``form``, recorded in the model's metadata):

  - ``linear`` (the CNN default; the simplified non-local block of the paper's section 3.1):
    Q = X*M, K = X_s*M_s, V = X_s with X_s the key tokens at spatial stride ``key_stride``
    (N_s of them), Y_att = Q (K^T V) / N_s via ``kernels.linear_attention.masked_linear_attention``
    (Triton kernels with the mask applied on load on CUDA, else the cheaper order in PyTorch);
  - ``softmax`` (transformer-style): Y_att = softmax((X*M)(X*M)^T / sqrt(C)) X via
    ``kernels.masked_channel_attention`` (``key_stride`` is not used);

* Y = X + BN0(DWConv3x3(Y_att)), BN0's gamma and beta start at 0 so the block starts as identity.

The sampler is token-wise Linear(C -> C) by default; ``sampler_rank`` r > 0 makes it low-rank
(C -> r -> C) and ``sampler_pooled`` computes one mask per image from the mean token (options
measured for DCS-ResNet50's size, see docs/dcs_attention.md).

``vanilla=True`` is the ablation baseline: the same block with M = 1 (plain self-attention).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from edge_reid.errors import InvalidInputError
from kernels import masked_channel_attention
from kernels.linear_attention import masked_linear_attention

#: The attention forms (``form`` option); the first is the default of the CNN models.
FORMS = ("linear", "softmax")


def check_form(form: object, key_stride: object) -> None:
    """Raise one clear sentence for an unknown ``form`` or a ``key_stride`` that is not an integer >= 1."""
    if form not in FORMS:
        raise InvalidInputError(f"DCS-Attention option form must be one of {', '.join(FORMS)}, got {form!r}.")
    if isinstance(key_stride, bool) or not isinstance(key_stride, int) or key_stride < 1:
        raise InvalidInputError(f"DCS-Attention option key_stride must be an integer >= 1, got {key_stride!r}.")


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


def make_sampler(channels: int, rank: int = 0) -> nn.Module:
    """The sampling-logit layer: Linear(C -> C), or the low-rank Linear(C -> r) -> Linear(r -> C) when rank > 0."""
    if rank <= 0:
        return nn.Linear(channels, channels)
    return nn.Sequential(nn.Linear(channels, rank, bias=False), nn.Linear(rank, channels))


class DCSAttention(nn.Module):
    """Differentiable Channel Selection attention block for a B x C x H x W feature map.

    After each forward, ``last_mask`` holds the (detached) B x N x C mask that was used and
    :meth:`kept_fraction` the share of channels it kept, for logging.
    """

    def __init__(self, channels: int, tau: float = 1.0, vanilla: bool = False, form: str = "linear",
                 key_stride: int = 2, sampler_rank: int = 0, sampler_pooled: bool = False) -> None:
        super().__init__()
        check_form(form, key_stride)
        if isinstance(sampler_rank, bool) or not isinstance(sampler_rank, int) or sampler_rank < 0:
            raise InvalidInputError(f"DCS-Attention option sampler_rank must be an integer >= 0, got {sampler_rank!r}.")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
            raise InvalidInputError(f"DCSAttention needs a positive integer channel count, got {channels!r}.")
        if not float(tau) > 0:
            raise InvalidInputError(f"DCSAttention option tau must be a positive number, got {tau!r}.")
        self.channels = channels
        self.tau = float(tau)
        self.vanilla = bool(vanilla)
        self.form = str(form)
        self.key_stride = int(key_stride)
        self.sampler_rank = int(sampler_rank)
        self.sampler_pooled = bool(sampler_pooled)
        self.sampler: Optional[nn.Module] = None if self.vanilla else make_sampler(channels, self.sampler_rank)
        self.dwconv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.last_mask: Optional[torch.Tensor] = None

    def channel_mask(self, tokens: torch.Tensor) -> torch.Tensor:
        """The B x N x C mask for ``tokens`` (B x N x C) in the current train/eval mode."""
        if self.sampler is None:
            return torch.ones_like(tokens)
        if self.sampler_pooled:  # one mask per image, from the mean token
            theta = self.sampler(tokens.mean(dim=1, keepdim=True))
            return binary_gumbel_mask(theta, self.tau, self.training).expand_as(tokens)
        theta = self.sampler(tokens)
        return binary_gumbel_mask(theta, self.tau, self.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise InvalidInputError(
                f"DCSAttention({self.channels}) expects a B x {self.channels} x H x W map, got {tuple(x.shape)}."
            )
        tokens = x.flatten(2).transpose(1, 2)  # B x N x C
        mask = self.channel_mask(tokens)
        self.last_mask = mask.detach()
        return x + self.bn(self.dwconv(self.attend(x, mask)))

    def attend(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Y_att (B x C x H x W) of map ``x`` with the B x N x C channel ``mask``, in this block's form."""
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # B x N x C
        if self.form == "softmax":
            att = masked_channel_attention(tokens.contiguous(), mask.contiguous(), 1.0 / c**0.5)
        else:
            att = masked_linear_attention(tokens, mask, (h, w), self.key_stride)  # keys and mask read in place
        return att.transpose(1, 2).reshape(b, c, h, w)

    def kept_fraction(self) -> float:
        """Share of channels the last mask kept (1.0 before any forward and for the vanilla block)."""
        if self.last_mask is None:
            return 1.0
        return float(self.last_mask.float().mean())

    def extra_repr(self) -> str:
        stride = f", key_stride={self.key_stride}" if self.form == "linear" else ""
        return f"channels={self.channels}, tau={self.tau}, vanilla={self.vanilla}, form={self.form}{stride}"
