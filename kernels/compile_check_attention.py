"""The masked-attention kernels' part of the ahead-of-time compile check (``kernels.compile_check``).

Records the launches the attention wrappers make at the benchmark's channel tiles (one-tile
kernels: C = 256 with the split backward, C = 24 with the symmetric one; channel-tiled kernels:
C = 2048), both mask kinds, and compiles each with every configuration it may run
(``compile_check.candidate_configs``) for the given architectures. The rows carry the SASS
counts (HGMMA / HMMA / wgmma waits / async copies), so the bf16 sm_90 builds can be shown to use
chained wgmma rather than mma.sync fallbacks.

    python benchmarks/compile_kernels.py --only attention --arch sm90 sm87
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from kernels.compile_check import BuildReport, _check_ready, candidate_configs, compile_launch
from kernels.launches import Launch, recording

#: Masked-attention sample problems per shape set: the benchmark's channel tiles (C = 256: one
#: tile, split backward; C = 24: one 32-wide tile, symmetric backward; C = 2048: channel-tiled
#: kernels), batch 2, and a ragged one.
ATTENTION_SHAPES: Dict[str, List[Tuple[int, int, int]]] = {
    "spec": [(2, 2048, 256), (2, 4096, 24), (2, 2048, 2048)],
    "odd": [(2, 100, 200)],
}


def attention_launches(dtype: torch.dtype, shapes: str = "spec") -> List[Launch]:
    """The masked-attention kernels' launches (forward and backward, B x C and B x N x C masks) at
    :data:`ATTENTION_SHAPES`, recorded from the real wrappers on CPU tensors."""
    from kernels.masked_attention import triton_backward, triton_forward, triton_tiled
    from kernels.masked_attention.triton_attention import mca_backward, mca_forward

    g = torch.Generator().manual_seed(1)
    with recording([triton_forward, triton_backward, triton_tiled]) as launches:
        for b, n, c in ATTENTION_SHAPES[shapes]:
            x = torch.randn(b, n, c, generator=g).to(dtype)
            for mask_shape in ((b, c), (b, n, c)):
                mask = (torch.rand(mask_shape, generator=g) > 0.5).to(dtype)
                y, lse = mca_forward(x, mask, c ** -0.5)
                mca_backward(torch.randn(b, n, c, generator=g).to(dtype), x, mask, y, lse, c ** -0.5)
    unique: Dict[Tuple, Launch] = {}
    for launch in launches:  # the two masks give the same forward: compile it once
        key = (launch.name, tuple(_arg_key(a) for a in launch.args), tuple(sorted(launch.constexprs.items())))
        unique.setdefault(key, launch)
    return list(unique.values())


def _arg_key(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), tuple(value.stride()), value.dtype)
    return value


def check_attention_kernels(archs: Sequence[int], dtypes: Sequence[torch.dtype], shapes: Sequence[str] = ("spec",),
                            on_report: Optional[Callable[[BuildReport], None]] = None) -> List[BuildReport]:
    """Compile the masked-attention kernels' launches (:func:`attention_launches`) with every
    configuration they may run (:func:`candidate_configs`) for each architecture; the rows carry
    the channel tile (``shapes`` = "C=<channels>") and the SASS counts."""
    _check_ready()
    reports: List[BuildReport] = []
    for dtype in dtypes:
        for launch in (launch for kind in shapes for launch in attention_launches(dtype, kind)):
            c = next(a for n, a in zip(launch.tuner.fn.arg_names, launch.args) if n == "C")
            for arch in archs:
                for config in candidate_configs(launch):
                    report = compile_launch(launch, config, arch)
                    report.shapes = f"C={c}" + ("" if launch.constexprs.get("MASK_ROWS", True) else " BxC mask")
                    reports.append(report)
                    if on_report is not None:
                        on_report(report)
    return reports



__all__ = ["ATTENTION_SHAPES", "attention_launches", "check_attention_kernels"]
