"""Atomic writes: a file is either the old one or the complete new one, never half written.

Everything the toolkit saves (checkpoints, ONNX files, engines, galleries, reports) goes
through :func:`atomic_write`: the data is written to a temporary file in the destination
folder, flushed to disk, then renamed over the destination.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Sequence, Union

PathLike = Union[str, "os.PathLike[str]"]


def _default_mode() -> int:
    """The permissions a plain ``open()`` would give a new file (mkstemp makes them 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


#: below this much free space a library's failed write (torch.save raises a RuntimeError such as
#: "unexpected pos") is reported as the full disk it is
_NEARLY_FULL = 16 << 20


def _explained(exc: BaseException, target: Path) -> Optional[OSError]:
    """An OSError naming ``target`` for a failed write, or None to re-raise ``exc`` unchanged.

    Python's write errors carry no file name and some writers hide a full disk in their own
    exception; the CLI turns the OSError into one sentence.
    """
    if isinstance(exc, OSError):
        return None if exc.filename else OSError(exc.errno, exc.strerror, str(target))
    if isinstance(exc, RuntimeError):
        with contextlib.suppress(OSError):
            if shutil.disk_usage(target.parent).free < _NEARLY_FULL:
                return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    return None


def _temporary_beside(target: Path) -> str:
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:  # name the file the user asked for, not the temporary
        raise OSError(exc.errno, exc.strerror, str(target)) from exc
    os.close(fd)
    os.chmod(tmp_name, _default_mode())
    return tmp_name


@contextlib.contextmanager
def _renamed_on_success(path: PathLike) -> Iterator[str]:
    """A temporary file name beside ``path``, renamed over it when the block succeeds, removed otherwise."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = _temporary_beside(target)
    try:
        yield tmp_name
        os.replace(tmp_name, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        explained = _explained(exc, target)
        if explained is not None:
            raise explained from exc
        raise


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it to ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    with _renamed_on_success(path) as tmp_name:
        with open(tmp_name, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for writers that want a file name.

    Use it for libraries that write by name (``onnx.save``, ``torch.save``, TensorRT):
    the temporary file is renamed to ``path`` when the block succeeds, removed otherwise.
    """
    with _renamed_on_success(path) as tmp_name:
        yield Path(tmp_name)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_image(path: PathLike, image: Any, params: Sequence[int] = (), atomic: bool = True) -> None:
    """Encode ``image`` (OpenCV BGR or grey) by ``path``'s extension and write it (atomically
    unless ``atomic`` is False, for files inside a folder that is itself staged); unlike
    ``cv2.imwrite``, a failed write raises an OSError naming the file instead of returning False."""
    import cv2

    target = Path(path)
    ok, data = cv2.imencode(target.suffix or ".png", image, list(params))
    if not ok:
        raise ValueError(f"OpenCV could not encode an image for {target}.")
    if atomic:
        with atomic_write(target, "wb") as handle:
            handle.write(data.tobytes())
        return
    try:
        target.write_bytes(data.tobytes())
    except OSError as exc:
        raise (_explained(exc, target) or exc) from exc


def atomic_write_csv(path: PathLike, rows: Sequence[Any], columns: Optional[Sequence[str]] = None) -> Path:
    """Write mappings ``rows`` as CSV (columns: given, else the union of keys in first-seen order), atomically."""
    import csv
    import io

    if columns is None:
        columns = []
        for r in rows:
            columns.extend(k for k in r if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    atomic_write_text(path, buffer.getvalue())
    return Path(path)
