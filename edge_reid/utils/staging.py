"""Whole-folder outputs: build into a staging folder beside the target, swap it in at the end.

A run killed midway (SIGKILL, power loss) or failing leaves the target exactly as it was,
the old complete set or nothing, never a mix of old and new files or an empty folder. The swap
is two renames (target -> ``.<name>.old-<pid>``, staging -> target); leftovers of a killed run
are tidied by the next run on the same target: its staging folder removed, an old set put
back if the target is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

_STAGING, _OLD = "staging", "old"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tidy(out: Path) -> None:
    """Remove what dead runs left beside ``out``; restore their old set when ``out`` is missing."""
    for leftover in sorted(out.parent.glob(f".{out.name}.*-*")):
        kind, _, rest = leftover.name[len(out.name) + 2:].partition("-")
        pid = rest.split(".")[0]
        if kind not in (_STAGING, _OLD) or not pid.isdigit() or _alive(int(pid)) or not leftover.is_dir():
            continue
        if kind == _OLD and not out.exists():
            leftover.rename(out)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(out: Union[str, Path]) -> Iterator[Path]:
    """Yield an empty folder beside ``out``; when the block succeeds it replaces ``out``, when it
    raises (or the process dies) ``out`` is untouched and the staging folder goes."""
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    _tidy(out)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.{_STAGING}-{os.getpid()}.", dir=out.parent))
    try:
        yield stage
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.{_OLD}-{os.getpid()}.{stage.name.rsplit('.', 1)[-1]}"
            out.rename(old)
        stage.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
