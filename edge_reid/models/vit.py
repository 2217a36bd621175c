"""A ViT-B/16-style vision transformer with overlapping patches and camera side information.

The parameter names follow timm's ``vit_base_patch16_224`` layout (``cls_token``,
``pos_embed``, ``patch_embed.proj``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``,
``norm``), so such a state dict loads directly (``edge_reid.models.vit_pretrained``).
Attention is written as two matmuls (no fused kernel) so that torch's FLOP counter sees it and
ONNX export uses standard ops only.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from edge_reid.errors import InvalidInputError


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample with probability ``p`` (training only)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Mlp(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax(q k^T / sqrt(d)) v over B x heads x tokens x d tensors."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    return scores.softmax(dim=-1) @ v


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """B x N x C -> B x heads x N x C / heads."""
    b, n, _ = x.shape
    return x.reshape(b, n, heads, -1).transpose(1, 2)  # -1, not c // heads: no If/Where in the ONNX graph


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """B x heads x N x d -> B x N x heads * d."""
    b, _, n, _ = x.shape
    return x.transpose(1, 2).reshape(b, n, -1)


class Attention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection (timm's layout)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise InvalidInputError(f"The attention width {dim} is not divisible by its {heads} heads.")
        self.heads = int(heads)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        out = attend(split_heads(q, self.heads), split_heads(k, self.heads), split_heads(v, self.heads))
        return self.proj(merge_heads(out))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Overlapping patches: a ``patch_size`` convolution with stride ``stride``."""

    def __init__(self, input_size: Tuple[int, int], patch_size: int, stride: int, dim: int) -> None:
        super().__init__()
        height, width = input_size
        if patch_size <= 0 or stride <= 0 or height < patch_size or width < patch_size:
            raise InvalidInputError(
                f"A ViT with {patch_size}-pixel patches and stride {stride} cannot cover a {height}x{width} input."
            )
        self.grid = token_grid(input_size, patch_size, stride)
        self.patch_size, self.stride = int(patch_size), int(stride)
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """ViT with a class token, learned position embeddings, optional SIE and a final LayerNorm.

    ``forward(x, camera_ids)`` returns all tokens after the final norm, B x (1 + N) x dim
    (the class token first). With ``num_cameras > 0`` a learned vector per camera, times
    ``sie_coef``, is added to every token (side information embedding, TransReID).
    """

    def __init__(self, input_size: Tuple[int, int] = (256, 128), patch_size: int = 16, stride: int = 12,
                 dim: int = 768, depth: int = 12, heads: int = 12, mlp_ratio: float = 4.0,
                 drop_path: float = 0.1, num_cameras: int = 0, sie_coef: float = 3.0) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(input_size, patch_size, stride, dim)
        self.dim, self.depth = int(dim), int(depth)
        self.grid = self.patch_embed.grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], dim))
        self.num_cameras, self.sie_coef = int(num_cameras), float(sie_coef)
        self.sie_embed = nn.Parameter(torch.zeros(self.num_cameras, 1, dim)) if self.num_cameras > 0 else None
        rates = [drop_path * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]  # linear, 0 .. drop_path
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, True, rates[i]) for i in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        for tensor in (self.cls_token, self.pos_embed) + ((self.sie_embed,) if self.sie_embed is not None else ()):
            nn.init.trunc_normal_(tensor, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, camera_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos_embed
        if self.sie_embed is not None:
            if camera_ids is None:
                raise InvalidInputError("This ViT embeds the camera (SIE), so it needs camera ids.")
            tokens = tokens + self.sie_coef * self.sie_embed[camera_ids]
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)


def token_grid(input_size: Sequence[int], patch_size: int, stride: int) -> Tuple[int, int]:
    """The patch grid (rows, columns) of an overlapping patch embedding."""
    return ((int(input_size[0]) - patch_size) // stride + 1, (int(input_size[1]) - patch_size) // stride + 1)
