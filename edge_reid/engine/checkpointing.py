"""Training checkpoints: model + everything needed to continue bit-for-bit.

On top of :func:`edge_reid.models.checkpoint.save_checkpoint` (weights and metadata) the
engine stores the optimizer, schedule, loss-composer state, position (epoch, batches done in
that epoch, global step), RNG states, config and the epoch history. Every value is a tensor,
number, string, list or dict, so the file loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

import torch

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.models.checkpoint import read_checkpoint, save_checkpoint

LAST = "last.pth"
BEST = "best.pth"
TRAINING_KEYS = ("optimizer", "epoch", "batch", "global_step", "rng", "config")


def save_training_checkpoint(path: Union[str, Path], model: torch.nn.Module, meta: ModelMeta,
                             state: Mapping[str, Any]) -> Path:
    """Write a checkpoint with the training ``state`` (atomically, like every checkpoint)."""
    return save_checkpoint(path, model, meta, extra=dict(state))


#: Files the engine writes atomically in a run folder; ``.NAME.*.tmp`` beside them are leftovers of a kill.
RUN_FILES = (LAST, BEST, "config.yaml", "log.jsonl", "log.csv")


def remove_stale_temporaries(run_dir: Union[str, Path]) -> List[Path]:
    """Delete the temporary files an interrupted run left in ``run_dir`` (``.last.pth.*.tmp`` ...); return them."""
    folder = Path(run_dir)
    removed: List[Path] = []
    if not folder.is_dir():
        return removed
    for name in RUN_FILES:
        for path in sorted(folder.glob(f".{name}.*.tmp")):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def resolve_resume_path(target: Union[str, Path]) -> Path:
    """``RUN_DIR`` -> ``RUN_DIR/last.pth``; a file is used as is; anything else is a clear error."""
    path = Path(target)
    if path.is_dir():
        candidate = path / LAST
        if not candidate.is_file():
            raise InvalidInputError(f"Run folder {path} holds no {LAST} to resume from.")
        return candidate
    if not path.exists():
        raise InvalidInputError(f"Resume target {path} does not exist (give a run folder or a checkpoint file).")
    return path


def load_training_checkpoint(target: Union[str, Path]) -> Dict[str, Any]:
    """Read a checkpoint that can be resumed; a weights-only or corrupt file is a clear error."""
    path = resolve_resume_path(target)
    payload = read_checkpoint(path)
    missing = [k for k in TRAINING_KEYS if k not in payload]
    if missing:
        raise InvalidInputError(
            f"Checkpoint {path} holds only model weights (no {', '.join(missing)}), so training cannot resume from it."
        )
    payload["_path"] = str(path)
    return payload
