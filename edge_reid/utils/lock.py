"""An exclusive lock on a folder, held by one process at a time, naming its holder.

Two writers of the same folder (two ``edge-reid stream`` runs saving one ``--gallery``) would
otherwise both load it, both add identities, and the later save would erase the other's. The
lock file ``<folder>/.edge-reid.lock`` is locked with ``flock`` (released by the kernel when the
holder dies, so a killed run never leaves a stale lock) and holds the holder's pid, which the
refusal names.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator, Union

from edge_reid.errors import InvalidInputError

LOCK_NAME = ".edge-reid.lock"


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"
    return text.split()[0] if text else "unknown"


@contextlib.contextmanager
def folder_lock(folder: Union[str, Path], what: str) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block; refuse at once (one sentence) if another process holds it.

    ``what`` names the folder for the message, e.g. ``"The gallery"``.
    """
    root = Path(folder).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    try:
        import fcntl  # POSIX: Linux, Jetson, macOS
    except ImportError:  # pragma: no cover - Windows
        logging.getLogger(__name__).warning("No file locking on this system: do not run two writers of %s.", root)
        yield path
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InvalidInputError(
                f"{what} {root} is in use by another edge-reid process (pid {_holder(path)}, lock file {path}); "
                "wait for it to finish or use another folder.") from None
        # the holder before us may have removed the file between our open and our lock: retry on the new one
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
