"""The linear DCS-attention kernels in the ahead-of-time compile check (issue 14, item 2).

``kernels.compile_check`` records their launches through :func:`linear_attention_launches` (called
from ``sample_launches``) and compiles each with the configurations of its channel tile
(:func:`linear_fitting_configs`: the ones the autotuner's pruner can pick there).
Their SASS counts (Hopper's warpgroup ``HGMMA`` against the ``HMMA`` mma.sync fallback) come with
every build's row (``compile_check.sass_counts``):

    python benchmarks/compile_kernels.py --arch sm90 --dtype bfloat16
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import torch

from kernels.launches import Launch, recording


#: Linear-form sample problems per shape set: (batch, C, (H, W), key stride). "spec": DCS-ResNet50
#: after layer1 (256 channels at 64 x 32), DCS-MobileNetV2's 24- and 64-channel stages (64 x 32,
#: 16 x 8: one shape per channel tile class); "odd":
#: C = 200 on a 15 x 7 map (ragged channel, token and key tiles).
LINEAR_SHAPES: Dict[str, List[Tuple[int, int, Tuple[int, int], int]]] = {
    "spec": [(2, 256, (64, 32), 2), (2, 24, (64, 32), 2), (2, 64, (16, 8), 2)],
    "odd": [(2, 200, (15, 7), 2)],
}


def linear_attention_launches(dtype: torch.dtype, shapes: str = "spec") -> List[Launch]:
    """The launches of the linear-form kernels (forward and backward) at :data:`LINEAR_SHAPES`."""
    from kernels.linear_attention import triton_linear as tli

    g = torch.Generator().manual_seed(0)
    out: List[Launch] = []
    for b, c, (h, w), stride in LINEAR_SHAPES.get(shapes, []):
        with recording([tli]) as launches:
            x = torch.randn(b, c, h * w, generator=g).to(dtype).transpose(1, 2)  # the model's strided tokens
            mask = (torch.rand(b, h * w, c, generator=g) > 0.5).to(dtype)
            tli.mla_forward(x, mask, (h, w), stride, 0.25)
            tli.mla_backward(torch.randn(b, h * w, c, generator=g).to(dtype), x, mask, (h, w), stride, 0.25)
        out += launches
    return out


def linear_fitting_configs(launch: Launch) -> List[Any]:
    """The autotune configs the pruner can pick for this linear-form launch (its channel tile)."""
    from kernels.linear_attention.triton_linear import config_fits

    c = int(launch.args[list(launch.tuner.fn.arg_names).index("C")])
    return [cfg for cfg in launch.tuner.configs if config_fits(cfg.kwargs, c)]


__all__ = ["LINEAR_SHAPES", "linear_attention_launches", "linear_fitting_configs"]
