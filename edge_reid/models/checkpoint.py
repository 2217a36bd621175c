"""The checkpoint format: model weights plus the metadata needed to rebuild the model.

A checkpoint is a dict saved with ``torch.save`` (atomically) and loaded with
``torch.load(weights_only=True)``, so it may hold only tensors, numbers, strings, lists and
dicts (no numpy arrays, no pickled objects)::

    {"format": "edge-reid-checkpoint", "format_version": 1,
     "meta": ModelMeta.to_dict(), "model": state_dict, ...training state added by the engine}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.utils.atomic import atomic_write

CHECKPOINT_FORMAT = "edge-reid-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(
    path: Union[str, Path], model: torch.nn.Module, meta: ModelMeta, extra: Optional[Mapping[str, Any]] = None
) -> Path:
    """Save ``model``'s weights, ``meta`` and ``extra`` training state to ``path`` atomically."""
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    payload: Dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "meta": meta.to_dict(),
        "model": state,
    }
    payload.update(extra or {})
    with atomic_write(path, "wb") as handle:
        torch.save(payload, handle)
    return Path(path)


def unsafe_pickle_refusal(exc: BaseException, what: str) -> Optional[str]:
    """The sentence for a file ``torch.load(weights_only=True)`` refused because it pickles Python
    objects beyond tensors and plain containers (which could run code); None for other errors."""
    import pickle

    if isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in str(exc).lower():
        return (f"{what} was refused as unsafe: it holds Python objects beyond tensors, numbers, strings, lists "
                "and dicts, and unpickling them could run code; use a file from a source you trust, saved by edge-reid.")
    return None


def read_checkpoint(path: Union[str, Path]) -> Dict[str, Any]:
    """Load a checkpoint dict safely; a missing, corrupt or foreign file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"Checkpoint {path} does not exist.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidInputError(unsafe_pickle_refusal(exc, f"Checkpoint {path}") or
            f"Checkpoint {path} is corrupt or truncated and cannot be loaded ({type(exc).__name__})."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInputError(f"{path} is not an edge-reid checkpoint (no '{CHECKPOINT_FORMAT}' header).")
    if payload.get("format_version", 0) > CHECKPOINT_VERSION:
        raise InvalidInputError(f"Checkpoint {path} was written by a newer edge-reid; upgrade to read it.")
    return payload


def load_model_from_checkpoint(path: Union[str, Path]) -> Tuple[torch.nn.Module, ModelMeta, Dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights (on the CPU, eval mode)."""
    from edge_reid.models.registry import build_model

    payload = read_checkpoint(path)
    meta = ModelMeta.from_dict(payload["meta"], source=f"checkpoint {path}")
    options = dict(meta.model_options)
    options.setdefault("input_size", tuple(meta.input_size))
    # options that checkpoints written before the model recorded them leave out, at their old values
    from edge_reid.models.registry import MODELS

    factory = MODELS.get(meta.model) if meta.model in MODELS.names() else None
    options = {**dict(getattr(factory, "unrecorded_defaults", {}) or {}), **options}
    model = build_model(meta.model, num_classes=meta.num_ids, **options)
    check_state_matches(model, payload["model"], f"Checkpoint {path}", f"model '{meta.model}' ({meta.num_ids} ids)")
    model.load_state_dict(payload["model"], strict=True)
    model.eval()
    return model, meta, payload


def check_state_matches(model: torch.nn.Module, state: Any, source: str, target: str) -> None:
    """Raise one sentence naming the missing, unexpected or wrongly shaped tensors of ``state``.

    ``source`` / ``target`` name the two sides, e.g. ``"Checkpoint runs/x/last.pth"`` and
    ``"model 'resnet50' (751 ids)"``. Nothing is loaded; a match returns silently.
    """
    if not isinstance(state, Mapping):
        raise InvalidInputError(f"{source} holds no weight dictionary for {target}.")
    own = _unwrap(model).state_dict()
    problems: List[str] = []
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shaped = [
        f"{k} is {_shape(state[k])} in the file but {tuple(own[k].shape)} in the model"
        for k in own
        if k in state and (not torch.is_tensor(state[k]) or tuple(state[k].shape) != tuple(own[k].shape))
    ]
    if shaped:
        problems.append(f"{len(shaped)} tensor(s) differ in shape ({'; '.join(shaped[:3])}" +
                        (f"; and {len(shaped) - 3} more)" if len(shaped) > 3 else ")"))
    if missing:
        problems.append(f"{len(missing)} missing ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:3])}"
                        f"{', ...' if len(unexpected) > 3 else ''})")
    if problems:
        raise InvalidInputError(f"{source} does not fit {target}: " + ", ".join(problems) + ".")


def _shape(value: Any) -> str:
    return str(tuple(value.shape)) if torch.is_tensor(value) else f"a {type(value).__name__}, not a tensor,"


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model
