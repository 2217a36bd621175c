"""The channel-tiled attention kernels' autotune rules (used by ``triton_tiled``'s pruners).

:func:`_shared_bytes` (estimated shared memory of one program), :func:`_programs` (programs per
launch), :func:`_fits` / :func:`_fits_dkv` (the value, channel and key tiles a launch's C and dtype
take; also the kernels' ``fits`` rule for ``compile_check.candidate_configs``). Host-side only:
nothing here is compiled for the GPU.
"""

from __future__ import annotations

import triton

from kernels.autotune import bucket


def _shared_bytes(meta: dict, elem: int) -> int:
    """Estimated shared memory of one program: the pipelined Q and K tiles and one output-sized
    buffer (within ~40% of what the compile check reads for sm_90 at the spec shapes)."""
    pipelined = meta["num_stages"] * (meta["BLOCK_M"] + meta["BLOCK_N"]) * meta["BLOCK_C"]
    return elem * (pipelined + meta["BLOCK_M"] * meta["BLOCK_DV"])


def _programs(meta: dict, args: dict) -> int:
    n, c, b = int(args["N"]), int(args["C"]), int(args["X"].shape[0])
    return triton.cdiv(n, meta["BLOCK_M"]) * triton.cdiv(c, meta["BLOCK_DV"]) * b


def _fits(meta: dict, args: dict) -> bool:
    """Value tile 128 for C <= 128 (256 would waste 2-10x of the PV work), 256 above (logits
    once per query block); channel tile no wider than C's next power of two (>= 32)."""
    c = int(args["C"])
    return meta["BLOCK_DV"] == (128 if c <= 128 else 256) and meta["BLOCK_C"] <= bucket(c, 32)


def _fits_dkv(meta: dict, args: dict) -> bool:
    """:func:`_fits`, and 64-key tiles for 16-bit inputs (wgmma), 32-key tiles for float32 (no spill)."""
    half = args["X"].element_size() == 2
    return _fits(meta, args) and (meta["BLOCK_N"] == 64) == half

