"""Load backbone weights from a local file (torchvision state-dict format); never downloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Union

import torch
from torch import nn

from edge_reid.errors import InvalidInputError


def load_weights_file(path: Union[str, Path], what: str = "Pretrained weights file") -> Any:
    """``torch.load`` of a local weights file with safe loading; a missing, corrupt or unsafe
    (pickled objects) file is one clear sentence naming it."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{what} {path} does not exist.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, not a torch file, or pickled objects refused as unsafe
        from edge_reid.models.checkpoint import unsafe_pickle_refusal

        raise InvalidInputError(unsafe_pickle_refusal(exc, f"{what} {path}")
                                or f"{what} {path} could not be read ({type(exc).__name__}).") from None


def load_backbone_weights(
    module: nn.Module,
    path: Union[str, Path],
    ignore_prefixes: Iterable[str] = ("fc.", "classifier."),
) -> None:
    """Load a state dict from ``path`` into ``module``.

    Keys starting with ``ignore_prefixes`` (ImageNet classifiers) are dropped. Any other
    missing or unexpected key is an error that names the keys, so a wrong file is never
    silently half-loaded.
    """
    path = Path(path)
    state = load_weights_file(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InvalidInputError(f"Pretrained weights file {path} does not hold a state dict.")
    prefixes = tuple(ignore_prefixes)
    state = {k: v for k, v in state.items() if not k.startswith(prefixes)}
    expected = {k for k in module.state_dict() if not k.startswith(prefixes)}
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise InvalidInputError(
            f"Pretrained weights file {path} does not match the backbone: "
            f"missing keys {_short(missing)}, unexpected keys {_short(unexpected)}."
        )
    shape_errors = [k for k, v in state.items() if tuple(v.shape) != tuple(module.state_dict()[k].shape)]
    if shape_errors:
        raise InvalidInputError(f"Pretrained weights file {path} has wrong shapes for keys {_short(shape_errors)}.")
    module.load_state_dict(state, strict=not any(k.startswith(prefixes) for k in module.state_dict()))


def _short(keys: list, limit: int = 6) -> str:
    if not keys:
        return "[]"
    shown = ", ".join(keys[:limit])
    return f"[{shown}{', ...' if len(keys) > limit else ''}] ({len(keys)} in all)"
