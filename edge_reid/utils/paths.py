"""Where the toolkit keeps what it generates by default (synthetic data, cached runs)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$EDGE_REID_HOME`` if set, else ``~/.cache/edge-reid``; created on demand."""
    root = Path(os.environ.get("EDGE_REID_HOME", Path.home() / ".cache" / "edge-reid"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def ensure_writable_dir(path: "os.PathLike[str] | str", flag: str) -> Path:
    """Create ``path`` (and parents) and prove a file can be written there, before any work starts.

    ``flag`` names the option in the message (``--out``, ``--gallery``). An unwritable folder
    (permissions, read-only file system, a file in the way, disk full) is one sentence.
    """
    import tempfile

    from edge_reid.errors import InvalidInputError

    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".edge-reid-write-test.") as handle:
            handle.write(b"x")
            handle.flush()
    except OSError as exc:
        raise InvalidInputError(f"{flag} {folder} is not writable ({exc.strerror or exc}); "
                                "choose a folder this user can write to.") from None
    return folder
