"""Load a ``vit_base_patch16_224`` state dict in timm's key layout into :class:`VisionTransformer`.

Nothing is downloaded: the file is a local ``torch.save`` of a state dict (or of a dict holding
one under ``state_dict`` / ``model``). The ImageNet head (``head.*``), ``pre_logits`` and a
``dist_token`` are dropped; the position embeddings of the checkpoint's square grid are resized
bilinearly to the model's patch grid (TransReID's resize); the camera embedding (SIE) is not in
ImageNet checkpoints and keeps its initialisation. A checkpoint of another patch size or width, or
one that lacks keys, is an error that names what differs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Union

import torch
import torch.nn.functional as F

from edge_reid.errors import InvalidInputError
from edge_reid.models.pretrained import load_weights_file
from edge_reid.models.vit import VisionTransformer

_DROPPED_PREFIXES = ("head.", "pre_logits.", "fc_norm.", "head_dist.")
_NOT_IN_CHECKPOINTS = ("sie_embed",)


def read_state_dict(path: Union[str, Path], what: str = "Pretrained weights file") -> Dict[str, torch.Tensor]:
    """The state dict stored in ``path`` (safe loading); a missing or foreign file is a clear error."""
    path = Path(path)
    state = load_weights_file(path, what)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInputError(f"{what} {path} does not hold a state dict of tensors.")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def resize_pos_embed(pos_embed: torch.Tensor, grid: tuple, extra_tokens: int = 1) -> torch.Tensor:
    """Resize 1 x (extra + S*S) x C position embeddings bilinearly to 1 x (extra + rows*cols) x C."""
    extra, patches = pos_embed[:, :extra_tokens], pos_embed[:, extra_tokens:]
    side = int(round(math.sqrt(patches.shape[1])))
    if side * side != patches.shape[1]:
        raise InvalidInputError(f"The checkpoint's {patches.shape[1]} position embeddings do not form a square grid.")
    if (side, side) == tuple(grid):
        return pos_embed
    square = patches.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square.float(), size=tuple(grid), mode="bilinear", align_corners=False)
    return torch.cat([extra, resized.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1).to(pos_embed.dtype)], dim=1)


def load_vit_weights(vit: VisionTransformer, path: Union[str, Path]) -> None:
    """Load a timm-layout ViT state dict from ``path`` into ``vit`` (see the module docstring)."""
    state = read_state_dict(path, "ViT weights file")
    state = {k: v for k, v in state.items() if not k.startswith(_DROPPED_PREFIXES) and k != "dist_token"}
    own = vit.state_dict()
    proj = state.get("patch_embed.proj.weight")
    want = own["patch_embed.proj.weight"]
    if proj is not None and tuple(proj.shape) != tuple(want.shape):
        raise InvalidInputError(
            f"ViT weights file {path} has {proj.shape[-1]}-pixel patches of width {proj.shape[0]}, but the model "
            f"uses {want.shape[-1]}-pixel patches of width {want.shape[0]}."
        )
    expected = {k for k in own if not k.startswith(_NOT_IN_CHECKPOINTS)}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise InvalidInputError(
            f"ViT weights file {path} does not match a {vit.depth}-block ViT of width {vit.dim} in timm's layout: "
            f"missing keys {_short(missing)}, unexpected keys {_short(unexpected)}."
        )
    if "pos_embed" in state:
        state["pos_embed"] = resize_pos_embed(state["pos_embed"], vit.grid)
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        raise InvalidInputError(f"ViT weights file {path} has wrong shapes: {_short(wrong)}.")
    vit.load_state_dict(state, strict=False)


def _short(keys: list, limit: int = 5) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:limit]) + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")
