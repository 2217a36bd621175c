"""The model a build exports: the given checkpoint, an untrained registry model, or the default.

The default is VisNet trained once with the quick synthetic config and cached under
``cache_dir()``, keyed by the resolved config's content and the package version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.utils.atomic import atomic_path
from edge_reid.utils.paths import cache_dir

if TYPE_CHECKING:  # pragma: no cover
    from edge_reid.deploy.pipeline import BuildConfig

DEFAULT_MODEL = "visnet"
QUICK_CONFIG = "visnet_synthetic_quick.yaml"


def _quick_config_path() -> Path:
    here = Path(__file__).resolve().parents[2] / "train" / "configs" / QUICK_CONFIG
    if not here.is_file():
        raise InvalidInputError(f"The quick training config {QUICK_CONFIG} was not found; pass --checkpoint.")
    return here


def quick_checkpoint_path(config_path: Path) -> Path:
    """Where the checkpoint trained with this config is cached: keyed by the resolved config's
    content and the package version, so editing the config (or upgrading) trains afresh."""
    from edge_reid import __version__
    from edge_reid.engine.config import load_config

    resolved = json.dumps(load_config(str(config_path)), sort_keys=True, default=str)
    digest = hashlib.sha256(f"{__version__}\n{resolved}".encode("utf-8")).hexdigest()[:12]
    return cache_dir() / "checkpoints" / f"{Path(config_path).stem}-{digest}.pth"


def default_checkpoint(say: Callable[[str], None] = print) -> Path:
    """The cached VisNet checkpoint of the quick synthetic training run (trained on first use)."""
    cached = quick_checkpoint_path(_quick_config_path())
    if cached.is_file():
        say(f"Using the cached default checkpoint {cached}.")
        return cached
    say("No checkpoint given: training VisNet with the quick synthetic config (a few minutes, once).")
    from edge_reid.engine import train

    # the training run stays in the cache (not in cwd), one folder per process so that two first
    # builds at once do not train into the same folder; the copy lands atomically
    run_dir = cache_dir() / "runs" / f"{cached.stem}-{os.getpid()}"
    result = train(str(_quick_config_path()), (f"output.dir={run_dir}",))
    with atomic_path(cached) as tmp:
        shutil.copyfile(result.checkpoint, tmp)
    return cached


def resolve_model(cfg: "BuildConfig", say: Callable[[str], None] = print) -> Tuple[Any, ModelMeta, Optional[Path]]:
    """(model in eval mode, ModelMeta, checkpoint path or None) for the build."""
    from edge_reid.models import build_model
    from edge_reid.models.checkpoint import load_model_from_checkpoint

    if cfg.checkpoint:
        model, meta, _ = load_model_from_checkpoint(cfg.checkpoint)
        return model, meta, Path(cfg.checkpoint)
    if cfg.model and cfg.model != DEFAULT_MODEL:
        say(f"No checkpoint given: exporting an untrained '{cfg.model}' (accuracy numbers are meaningless).")
        model = build_model(cfg.model, num_classes=2).eval()
        return model, model.meta("untrained"), None
    path = default_checkpoint(say)
    model, meta, _ = load_model_from_checkpoint(path)
    return model, meta, path


__all__ = ["DEFAULT_MODEL", "QUICK_CONFIG", "default_checkpoint", "quick_checkpoint_path", "resolve_model"]
