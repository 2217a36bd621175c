"""FusionReID's building blocks: GeM pooling, the Local Refinement Unit and the Heterogeneous
Transmission Module (Shared Encoding Units + Mutual Fusion Units). Sizes as in
``shared/specs/fusionreid.md``."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from edge_reid.models.vit import Block, Mlp, attend, merge_heads, split_heads


class GeM(nn.Module):
    """Generalised-mean pooling over the spatial positions with a learnable exponent ``p``."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x H x W -> B x C."""
        return x.clamp(min=self.eps).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class LocalRefinementUnit(nn.Module):
    """Depthwise 1x1 conv -> BN -> PReLU -> 1x1 conv to ``out_dim`` -> BN -> PReLU (both convs biased)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_dim, in_dim, kernel_size=1, groups=in_dim, bias=True),
            nn.BatchNorm2d(in_dim),
            nn.PReLU(1),
            nn.Conv2d(in_dim, out_dim, kernel_size=1, bias=True),
            nn.BatchNorm2d(out_dim),
            nn.PReLU(1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SharedEncodingUnit(nn.Module):
    """A ViT block (no qkv bias, no drop-path) followed by a LayerNorm."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.block = Block(dim, heads, mlp_ratio=4.0, qkv_bias=False, drop_path=0.0, eps=1e-5)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(self.block(tokens))


class MutualFusionUnit(nn.Module):
    """Cross-attention of one query token to the other branch's patch tokens, then an MLP.

    LayerNorm on the query and on the key input only (values come from the raw tokens);
    x = q + attention; x = x + MLP(LN(x)); no final norm.
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = int(heads)
        self.norm_q = nn.LayerNorm(dim)
        self.norm_k = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, query: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """query B x 1 x C, tokens B x N x C -> B x 1 x C."""
        q = split_heads(self.q(self.norm_q(query)), self.heads)
        k = split_heads(self.k(self.norm_k(tokens)), self.heads)
        v = split_heads(self.v(tokens), self.heads)
        x = query + self.proj(merge_heads(attend(q, k, v)))
        return x + self.mlp(self.norm_mlp(x))


class HTMLayer(nn.Module):
    """One Heterogeneous Transmission Module: SEU per branch (or one shared), then two MFUs.

    Each branch's current global token is concatenated with that branch's original LRU patch
    tokens and encoded; the CNN-query MFU attends from the CNN's encoded global token to the
    ViT's encoded patch tokens and vice versa. The two outputs are the next global tokens.
    """

    def __init__(self, dim: int, heads: int, shared_seu: bool = False) -> None:
        super().__init__()
        self.seu_cnn = SharedEncodingUnit(dim, heads)
        self.seu_vit = None if shared_seu else SharedEncodingUnit(dim, heads)  # None: the CNN's SEU serves both
        self.mfu_cnn = MutualFusionUnit(dim, heads)
        self.mfu_vit = MutualFusionUnit(dim, heads)

    def forward(self, g_cnn: torch.Tensor, g_vit: torch.Tensor, p_cnn: torch.Tensor,
                p_vit: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Global tokens B x 1 x C and patch tokens B x N x C of each branch -> new global tokens."""
        e_cnn = self.seu_cnn(torch.cat([g_cnn, p_cnn], dim=1))
        e_vit = (self.seu_cnn if self.seu_vit is None else self.seu_vit)(torch.cat([g_vit, p_vit], dim=1))
        return self.mfu_cnn(e_cnn[:, :1], e_vit[:, 1:]), self.mfu_vit(e_vit[:, :1], e_cnn[:, 1:])
