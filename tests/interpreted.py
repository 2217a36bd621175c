"""Run a kernel test file as a script under Triton's interpreter and read back its results.

``TRITON_INTERPRET`` must be set before Triton decorates the kernels, so interpreter checks run
in a child process (leaving the environment of other test modules alone); the child prints one
JSON line of measurements, which the parent test asserts on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def run_interpreted(test_file: str, *args: str, timeout: int = 1200) -> Any:
    """Run ``test_file`` with ``TRITON_INTERPRET=1`` and return the JSON of its last output line."""
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, os.path.abspath(test_file), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
