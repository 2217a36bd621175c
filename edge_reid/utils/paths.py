"""Where the toolkit keeps what it generates by default (synthetic data, cached runs)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$EDGE_REID_HOME`` if set, else ``~/.cache/edge-reid``; created on demand."""
    root = Path(os.environ.get("EDGE_REID_HOME", Path.home() / ".cache" / "edge-reid"))
    root.mkdir(parents=True, exist_ok=True)
    return root
