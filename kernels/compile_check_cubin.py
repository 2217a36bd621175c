"""What a compiled kernel uses, read back from its cubin with ``cuobjdump`` (shipped with Triton).

Registers and stack + local bytes per thread (:func:`resource_usage`), and counts of chosen SASS
opcodes (:func:`sass_counts`: wgmma, mma.sync, wgmma waits, asynchronous copies). Both give None
without the tool. Used by the ahead-of-time compile check (``kernels.compile_check``).
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from typing import Dict, Optional, Tuple


def _cuobjdump(cubin: bytes, flag: str) -> Optional[str]:
    """cuobjdump's output for a cubin (``--dump-resource-usage``, ``--dump-sass``), None without the tool."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as fh:
            fh.write(cubin)
        return subprocess.run([tool, flag, path], capture_output=True, text=True).stdout


#: SASS opcodes counted per build: Hopper's warpgroup MMA (wgmma), the warp-level mma.sync
#: fallback, the waits on outstanding wgmma groups, and asynchronous global->shared copies
#: (cp.async LDGSTS, TMA UTMALDG).
SASS_OPCODES = {"hgmma": r"\bHGMMA\.", "hmma": r"\bHMMA\.", "gmma_waits": r"\bWARPGROUP\.DEPBAR\b",
                "async_copies": r"\b(?:LDGSTS|UTMALDG)\b"}


def sass_counts(cubin: bytes) -> Dict[str, Optional[int]]:
    """Instruction counts of :data:`SASS_OPCODES` in a cubin's SASS (None each without cuobjdump).

    HGMMA > 0 and HMMA == 0 means every tensor-core dot became wgmma; the ratio of HGMMA to
    waits is how many are issued back to back before the program waits for them."""
    sass = _cuobjdump(cubin, "--dump-sass")
    if sass is None:
        return {k: None for k in SASS_OPCODES}
    return {k: len(re.findall(pattern, sass)) for k, pattern in SASS_OPCODES.items()}


def resource_usage(cubin: bytes) -> Tuple[Optional[int], Optional[int]]:
    """(registers per thread, stack + local bytes per thread) of a cubin, read with cuobjdump."""
    out = _cuobjdump(cubin, "--dump-resource-usage")
    if out is None:
        return None, None
    regs = re.search(r"REG:(\d+)", out)
    stack = re.search(r"STACK:(\d+)", out)
    local = re.search(r"LOCAL:(\d+)", out)
    if not regs:
        return None, None
    spill = (int(stack.group(1)) if stack else 0) + (int(local.group(1)) if local else 0)
    return int(regs.group(1)), spill


__all__ = ["SASS_OPCODES", "resource_usage", "sass_counts"]
