"""What the one-tile attention kernels share: operand preparation, tile tables, the pruner.

One tile: the whole (padded) channel dimension is one constexpr tile ``HEAD`` (the next power of
two >= C, at least 16), so a logits tile ``Z_i Z_j^T`` is a single ``tl.dot`` with K = HEAD (on
sm_90: HEAD / 16 chained HGMMA before one wait) and each program loads and masks its own rows once.
Used for C <= :data:`MAX_HEAD`; wider C goes to the channel-tiled kernels (``triton_tiled``).

Operands (:func:`prepare`): Z = X * M is formed once per call (exact: the reference multiplies in
the same dtype), and X, Z, dY are laid out contiguous with rows padded with zeros to a multiple of
:data:`ROW_ALIGN` elements, so every row starts 16-byte aligned (vector / cp.async loads) and the
padded channels add nothing to any product. Peak extra memory: a few B x N x C buffers, O(N C).

Tile tables: ``{HEAD: [config, ...]}`` per kernel; the autotuner sees their union, and the pruner
keeps the ones listed for the launch's HEAD, drops those over the device's shared memory (and,
in float32, those the compile check saw spill), and times at most ``autotune.MAX_TRIED``.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Sequence, Tuple

import torch

from kernels.autotune import config_label, make_pruner

LOG2E = 1.4426950408889634
#: Widest channel count the one-tile kernels take (a BLOCK x 256 float32 accumulator per program).
MAX_HEAD = 256
#: Widest HEAD the one-tile kernels take in float32 on a GPU (tf32x3 triples the operand tiles; the
#: compile check verified HEAD 32 on sm_90: no spill in the kept configurations, <= 137 KiB shared).
FLOAT32_MAX_HEAD = 32
#: Rows are padded to a multiple of this many elements (32 bytes in 16-bit types, 64 in float32).
ROW_ALIGN = 16
#: Backward form by HEAD: the symmetric single kernel up to this HEAD, FA2's dQ + dK/dV split above.
SYMMETRIC_MAX_HEAD = 64


def head_tile(channels: int) -> int:
    """The constexpr channel tile for C channels: the next power of two >= max(C, 16)."""
    c = max(int(channels), 16)
    return 1 << (c - 1).bit_length()


def padded_channels(channels: int) -> int:
    """C rounded up to a multiple of :data:`ROW_ALIGN`."""
    return -(-int(channels) // ROW_ALIGN) * ROW_ALIGN


def dot_precision(dtype: torch.dtype) -> str:
    """``tl.dot``'s input precision: float32 as three TF32 products (tensor cores, ~float32
    accuracy); 16-bit inputs go to the tensor cores as they are (the value is then ignored)."""
    return "tf32x3" if dtype == torch.float32 else "tf32"


def aligned_rows(t: torch.Tensor, cp: int) -> torch.Tensor:
    """``t`` (B x N x C) as a contiguous B x N x cp tensor, zero-padded channels; no copy when it
    already is one."""
    b, n, c = t.shape
    if c == cp and t.is_contiguous():
        return t
    out = t.new_zeros((b, n, cp))
    out[..., :c] = t
    return out


def prepare(x: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(X, Z = X * M, M3): X and Z contiguous with aligned rows; M3 the mask as a B x N x C view in
    x's dtype (stride 0 over N for a B x C mask), read once per program in the epilogues."""
    m = mask.to(x.dtype)
    m3 = m.unsqueeze(1).expand_as(x) if m.dim() == 2 else m
    cp = padded_channels(x.shape[-1])
    return aligned_rows(x, cp), aligned_rows(x * m3, cp), m3


def table_configs(table: Mapping[int, Sequence[dict]]) -> List[dict]:
    """The union of a tile table's configurations (each once, in table order)."""
    seen, out = set(), []
    for configs in table.values():
        for c in configs:
            if config_label(c) not in seen:
                seen.add(config_label(c))
                out.append(dict(c))
    return out


def table_pruner(table: Mapping[int, Sequence[dict]], shared_bytes: Callable[[Dict[str, Any], int, int], int],
                 rows: Callable[[Dict[str, Any]], int], float32_excluded: Iterable[Mapping[str, Any]] = ()
                 ) -> Callable[..., List[Any]]:
    """The pruner of a kernel with tile table ``table``: configurations listed for the launch's HEAD,
    within the device's shared memory (``shared_bytes(meta, element size, HEAD)``), not spilling in
    float32, at most two (see autotune.make_pruner). ``rows(meta)`` is the block of rows one
    program owns (the grid is cdiv(N, rows) x B)."""
    listed = {head: {config_label(c) for c in configs} for head, configs in table.items()}
    excluded = float32_excluded  # read at each prune (a list the module fills stays live)

    def fits(meta: Dict[str, Any], args: Dict[str, Any]) -> bool:
        return config_label(meta) in listed.get(int(args["HEAD"]), ())

    def programs(meta: Dict[str, Any], args: Dict[str, Any]) -> int:
        n, b = int(args["N"]), int(args["X"].shape[0])
        return -(-n // rows(meta)) * b

    def prune(configs: Sequence[Any], named_args: Dict[str, Any], **kwargs: Any) -> List[Any]:
        head = int({**named_args, **kwargs}["HEAD"])
        inner = make_pruner(tensor_arg="X", shared_bytes=lambda meta, elem: shared_bytes(meta, elem, head),
                            programs=programs, fits=fits, float32_excluded=excluded)
        return inner(configs, named_args, **kwargs)

    return prune


def skip_before_hopper(pruner: Callable[..., List[Any]], configs: Iterable[Mapping[str, Any]]) -> Callable[..., List[Any]]:
    """``pruner`` that first drops ``configs`` on CUDA devices older than sm_90 (they spill there:
    the compile check for sm_87 reads 8-16 bytes of spill where sm_90's wgmma code has none)."""
    labels = {config_label(c) for c in configs}

    def prune(candidates: Sequence[Any], named_args: Dict[str, Any], **kwargs: Any) -> List[Any]:
        ref = named_args.get("X")
        if ref is not None and ref.device.type == "cuda" and torch.cuda.get_device_capability(ref.device)[0] < 9:
            candidates = [c for c in candidates if config_label(c) not in labels] or list(candidates)
        return pruner(candidates, named_args, **kwargs)

    return prune


__all__ = ["FLOAT32_MAX_HEAD", "LOG2E", "MAX_HEAD", "ROW_ALIGN", "SYMMETRIC_MAX_HEAD", "aligned_rows", "dot_precision", "head_tile",
           "padded_channels", "prepare", "skip_before_hopper", "table_configs", "table_pruner"]
