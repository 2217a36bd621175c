"""Safe output folders: generate beside the target, then swap it in with a rename.

A synthetic folder (one holding the manifest) may be replaced; any other non-empty folder
is never touched.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from edge_reid.errors import InvalidInputError
from edge_reid.utils.staging import staged_dir

MANIFEST = "synthetic.json"


def check_target(out: Path, manifest: str = MANIFEST) -> None:
    """Refuse ``out`` if it is a file or a non-empty folder this generator did not write."""
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"The output path {out} exists and is not a folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / manifest).is_file():
        raise InvalidInputError(
            f"The output folder {out} is not empty and was not written by the synthetic generator; "
            "choose a new or empty folder."
        )


@contextlib.contextmanager
def staged_folder(out: Path, manifest: str = MANIFEST) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success it replaces ``out`` atomically."""
    out = Path(out)
    check_target(out, manifest)
    with staged_dir(out) as tmp:
        yield tmp
