"""What QAT trains on: the ``qat`` config section and the checkpoint's training crops, resolved before a
build's long steps so that missing data stops it early with one sentence."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from edge_reid.deploy.qat import QatSettings
from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta


def training_crops(dataset: Optional[str], root: Optional[str], input_size: Tuple[int, int], limit: int,
                   source: str, options: Optional[Dict[str, Any]] = None) -> np.ndarray:
    """Up to ``limit`` pre-processed crops of ``dataset``'s training split (built with the training
    config's ``data.options``, e.g. a generated synthetic set's parameters), or one clear error."""
    from edge_reid.data import build_dataset
    from edge_reid.deploy.int8 import calibration_from_paths

    if not dataset:
        raise InvalidInputError(f"QAT needs the training data of {source}, which names no dataset.")
    try:
        ds = build_dataset(dataset, root=root, verbose=False, **dict(options or {}))
        paths = [r.path for r in ds.train]
    except Exception as exc:  # a missing folder, an unknown name: the data is not available here
        raise InvalidInputError(f"QAT needs the training data of {source} (dataset '{dataset}'), which is not "
                                f"available here ({str(exc).rstrip('.')}).") from None
    if not paths:
        raise InvalidInputError(f"QAT needs the training data of {source}, but dataset '{dataset}' has no training images.")
    return calibration_from_paths(paths, input_size, limit)


def settings_from_config(config: Optional[Dict[str, Any]]) -> QatSettings:
    """The ``qat`` section of a (resolved) training config, defaults for what it leaves out."""
    section = dict((config or {}).get("qat") or {})
    return QatSettings(**{k: type(getattr(QatSettings, k))(v) for k, v in section.items() if hasattr(QatSettings, k)})


@dataclass
class QatPlan:
    """What QAT will train on (resolved before the build's long steps, so missing data stops it early)."""

    settings: QatSettings
    images: np.ndarray
    dataset: str


def plan_qat(meta: ModelMeta, checkpoint: Optional[Path], calibration: Optional[np.ndarray],
             config_path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> QatPlan:
    """The settings and training crops of QAT for ``checkpoint`` (``overrides`` on top of its config's
    ``qat`` section), or one clear error."""
    if calibration is None or len(calibration) == 0:
        raise InvalidInputError("The calibration set is empty; QAT needs calibration crops for its activation scales.")
    config: Dict[str, Any] = {}
    if checkpoint is not None:
        from edge_reid.models.checkpoint import read_checkpoint

        config = dict(read_checkpoint(checkpoint).get("config") or {})
    if config_path:
        from edge_reid.engine.config import load_config

        config = load_config(config_path)
    settings = settings_from_config({"qat": {**dict(config.get("qat") or {}), **dict(overrides or {})}})
    if settings.start not in ("ptq", "all"):
        raise InvalidInputError(f"Unknown QAT start {settings.start!r}; choose ptq or all.")
    data = config.get("data") or {}
    source = f"checkpoint {checkpoint}" if checkpoint else f"the untrained '{meta.model}'"
    dataset = data.get("dataset") or (meta.dataset if checkpoint and meta.dataset not in ("unknown", "") else None)
    images = training_crops(dataset, data.get("root"), meta.input_size, settings.images, source,
                            data.get("options"))
    return QatPlan(settings, images, str(dataset))
