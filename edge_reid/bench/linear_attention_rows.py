"""Benchmark rows of DCS-Attention's linear form at the shapes the DCS models use (GPU only).

:func:`dcs_attention_shapes` reads the (C, H, W) of every linear DCS-Attention block of
DCS-MobileNetV2 and DCS-ResNet50 from the models themselves (a forward hook, one 256x128 image on
the CPU). :func:`bench_linear_attention` times forward + backward of, per shape and dtype: the eager
reference (``masked_linear_attention_reference``, cheaper order), torch.compile of it, the Triton
path (``masked_linear_attention(path="triton")``) and the dispatcher's choice, on the models'
strided token layout (a B x C x H x W map seen as B x N x C) with a binary float mask that receives
a gradient. :func:`bench_linear` turns them into rows of ``benchmarks/bench_kernels.py``.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import torch

from edge_reid.bench.cuda_timing import cuda_median_ms
from edge_reid.bench.kernel_rows import Peaks, Row, fwd_bwd, kernel_row

#: (label, model name) of the linear-form models benchmarked.
MODELS: Tuple[Tuple[str, str], ...] = (("DCS-MobileNetV2", "dcs_mobilenetv2"), ("DCS-ResNet50", "dcs_resnet50"))


def dcs_attention_shapes(input_hw: Tuple[int, int] = (256, 128),
                         models: Tuple[Tuple[str, str], ...] = MODELS) -> List[Tuple[str, int, int, int, int]]:
    """(model label, C, H, W, key stride) of every linear DCS-Attention block, read from the models."""
    from edge_reid.models import build_model
    from edge_reid.models.dcs_attention import DCSAttention

    out: List[Tuple[str, int, int, int, int]] = []
    for label, name in models:
        model = build_model(name, num_classes=2, input_size=input_hw).eval()
        found: List[Tuple[str, int, int, int, int]] = []
        hooks = [m.register_forward_hook(lambda mod, inp, _o: found.append(
                     (label, int(inp[0].shape[1]), int(inp[0].shape[2]), int(inp[0].shape[3]), mod.key_stride)))
                 for m in model.modules() if isinstance(m, DCSAttention) and m.form == "linear"]
        with torch.no_grad():
            model(torch.randn(1, 3, *input_hw))
        for h in hooks:
            h.remove()
        out += found
    return out


def bench_linear_attention(shapes: List[Tuple[str, int, int, int, int]], batch: int, dtypes: List[torch.dtype],
                           time_fn: Callable[[Callable[[], None]], float], peak_bytes: float) -> List[dict]:
    """One row per (shape, dtype): milliseconds of each path (forward + backward) and the Triton path's
    share of the HBM peak for its compulsory traffic (read X, M; write Y; read dY, X, M; write dX, dM)."""
    from kernels.linear_attention import masked_linear_attention, masked_linear_attention_reference
    from kernels.linear_attention.masked import choose_path

    rows = []
    for dtype in dtypes:
        for label, c, h, w, stride in shapes:
            x = torch.randn(batch, c, h * w, device="cuda", dtype=dtype).transpose(1, 2).requires_grad_()
            mask = (torch.rand(batch, h * w, c, device="cuda") > 0.5).to(dtype).requires_grad_()
            torch._dynamo.reset()  # a fresh compile per shape: no recompile limit reached across the rows
            compiled = torch.compile(masked_linear_attention_reference)
            variants: Dict[str, Callable[[], torch.Tensor]] = {
                "eager": lambda: masked_linear_attention_reference(x, mask, (h, w), stride),
                "compile": lambda: compiled(x, mask, (h, w), stride),
                "triton": lambda: masked_linear_attention(x, mask, (h, w), stride, path="triton"),
                "dispatch": lambda: masked_linear_attention(x, mask, (h, w), stride),
            }
            times: Dict[str, float] = {}
            for name, fn in variants.items():
                run = fwd_bwd(fn, [x, mask])
                try:
                    run()  # compile / autotune first
                    torch.cuda.synchronize()
                    times[name] = time_fn(run)
                except (torch.cuda.OutOfMemoryError, RuntimeError):
                    times[name] = float("nan")
                    torch.cuda.empty_cache()
            ks = -(-h // stride) * -(-w // stride)
            traffic = 8 * batch * h * w * c * x.element_size()
            gbs = traffic / (times["triton"] * 1e-3) / 1e9
            rows.append({"op": "linear_attention_fwd_bwd",
                         "shape": f"{label} B{batch} C{c} {h}x{w} keys {ks} {str(dtype).split('.')[-1]}",
                         "times": times, "achieved": f"{gbs:.0f} GB/s compulsory traffic (Triton)",
                         "fraction": gbs * 1e9 / peak_bytes if peak_bytes else float("nan"),
                         "path": choose_path(h * w, ks, c, "cuda")})
    return rows



# ----------------------------------------------------------------------------- linear DCS attention (issue 14, item 2)
def bench_linear(dtypes: List[torch.dtype], rows: List[Row], peaks: Peaks, quick: bool) -> None:
    """Forward + backward of the linear form at every DCS-MobileNetV2 / DCS-ResNet50 attention shape
    (batch 64; --quick: the first two at batch 8): eager, torch.compile, Triton, dispatcher."""
    shapes = dcs_attention_shapes((256, 128))
    for r in bench_linear_attention(shapes[:2] if quick else shapes, 8 if quick else 64, dtypes, cuda_median_ms,
                                    peaks[0] if peaks else 0.0):
        rows.append(kernel_row(r["op"], r["shape"], {**r["times"], "path": r["path"]}, r["achieved"], r["fraction"]))


__all__ = ["MODELS", "bench_linear", "bench_linear_attention", "dcs_attention_shapes"]
