"""The linear DCS-attention kernels in the ahead-of-time compile check (issue 14, item 2).

``kernels.compile_check`` records their launches through :func:`linear_attention_launches` (called
from ``sample_launches``) and compiles each with the configurations of its channel tile
(:func:`linear_fitting_configs`: the ones the autotuner's pruner can pick there).
:func:`linear_mma_report` counts the tensor-core instructions in their SASS: Hopper's warpgroup
``HGMMA`` against the ``HMMA`` (mma.sync) fallback.

    python -c "from kernels.compile_check_linear import linear_mma_report; print(linear_mma_report())"
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import warnings
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


def mma_counts(cubin: bytes) -> Dict[str, int]:
    """Tensor-core instructions in a cubin's SASS (cuobjdump): Hopper warpgroup ``HGMMA`` vs ``HMMA``."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as fh:
            fh.write(cubin)
        sass = subprocess.run([tool, "--dump-sass", path], capture_output=True, text=True).stdout
    return {op: len(re.findall(rf"\b{op}\.", sass)) for op in ("HGMMA", "HMMA")}


def linear_mma_report(arch: int = 90, dtype: torch.dtype = torch.bfloat16, shapes: str = "spec") -> List[Dict[str, Any]]:
    """HGMMA / HMMA counts of every linear-form launch x fitting config (compiled for ``sm_<arch>``)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from kernels.compile_check import _config_label, _signature

    rows = []
    for launch in linear_attention_launches(dtype, shapes):
        for config in linear_fitting_configs(launch):
            sig, consts, attrs = _signature(launch, config)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kernel = triton.compile(ASTSource(launch.tuner.fn, sig, consts, attrs), target=GPUTarget("cuda", arch, 32),
                                        options={"num_warps": config.num_warps, "num_stages": config.num_stages})
            rows.append({"kernel": launch.name, "constexprs": dict(launch.constexprs), "config": _config_label(config),
                         "C": int(launch.args[list(launch.tuner.fn.arg_names).index("C")]),
                         **mma_counts(kernel.asm["cubin"])})
    return rows


__all__ = ["LINEAR_SHAPES", "linear_attention_launches", "linear_fitting_configs", "linear_mma_report", "mma_counts"]
