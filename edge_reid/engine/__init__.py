"""The training engine: configs, the Trainer and its hooks, checkpoints, multi-process runs.

``train(config, overrides=(), resume=None) -> TrainResult`` is the library entry point;
``edge-reid train`` and ``train/train.py`` call it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train", "TrainResult", "load_config"]


def __getattr__(name: str) -> Any:
    # imported on first use so that ``edge_reid.engine.config`` stays light
    if name in ("train", "TrainResult"):
        from edge_reid.engine import api

        return getattr(api, name)
    if name == "load_config":
        from edge_reid.engine.config import load_config

        return load_config
    raise AttributeError(f"module 'edge_reid.engine' has no attribute {name!r}")
