"""Rows of ``benchmarks/bench_kernels.py`` for masked channel attention (GPU only).

:func:`bench_attention` times forward + backward of every path of
``kernels/masked_attention/dispatch.py`` (eager reference, its torch.compile, the Triton kernels,
SDPA) and of the dispatcher's own choice, one row per path and a summary row;
:func:`bench_attention_configs` times each GPU configuration of the one-tile kernels alone.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch

from edge_reid.bench.cuda_timing import cuda_median_ms
from edge_reid.bench.kernel_rows import Peaks, Row, fwd_bwd, kernel_row

#: Attention paths timed per shape: column name in the summary row -> dispatch path.
ATTENTION_PATHS = {"eager": "reference", "compile": "compiled", "triton": "triton", "sdpa": "sdpa"}

Shape = Tuple[int, int, int]  # batch, tokens, channels


def _attention_inputs(b: int, n: int, c: int, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(b, n, c, device="cuda", dtype=dtype, requires_grad=True)
    mask = (torch.rand(b, n, c, device="cuda") > 0.5).to(dtype).requires_grad_()
    return x, mask


def attention_achieved(b: int, n: int, c: int, ms: float, dtype: torch.dtype, peaks: Peaks) -> Tuple[str, float]:
    """('x TFLOP/s (...)', fraction of the matching peak: FP32 CUDA cores or FP16/BF16 tensor cores).

    Algorithmic FLOPs (7 N x N x C products for forward + backward, the FlashAttention
    convention), so the figure compares across implementations; recomputation is not counted.
    """
    from kernels.masked_attention.reference import attention_flops

    tflops = attention_flops(b, n, c, backward=True) / (ms * 1e-3) / 1e12
    label = "fp32 IEEE dots" if dtype == torch.float32 else f"{str(dtype).split('.')[-1]} tensor cores"
    peak = (peaks[2] if dtype == torch.float32 else peaks[1]) if peaks else float("nan")
    return f"{tflops:.1f} TFLOP/s algorithmic ({label})", tflops * 1e12 / peak


# --- masked attention: every path, per-path rows, the dispatcher's timed pick (issue 14 item 1) ---


def bench_attention(shapes: Sequence[Shape], dtypes: Sequence[torch.dtype], rows: List[Row], peaks: Peaks) -> None:
    """Per shape and dtype: forward + backward of every path (``masked_channel_attention(path=...)``:
    eager reference, its torch.compile, the Triton kernels, SDPA on (X*M, X*M, X)) and of the
    default call (the dispatcher, which times the paths itself on first use at a shape class).
    One row per path (time, algorithmic TFLOP/s, fraction of peak, peak memory), then a summary
    row with every path's time and the dispatcher's pick."""
    from kernels.masked_attention import masked_channel_attention
    from kernels.masked_attention.dispatch import pick_path
    from kernels.masked_attention.op import run_path

    for dtype in dtypes:
        for b, n, c in shapes:
            x, mask = _attention_inputs(b, n, c, dtype)
            label = f"B{b}xN{n}xC{c} {str(dtype).split('.')[-1]}"
            variants = {name: (lambda p=path: masked_channel_attention(x, mask, path=p))
                        for name, path in ATTENTION_PATHS.items()}
            variants["dispatch"] = lambda: masked_channel_attention(x, mask)
            times: Dict[str, object] = {}
            mem = {}
            for name, fn in variants.items():
                try:
                    run = fwd_bwd(fn, [x, mask])
                    run()  # compile / autotune / the dispatcher's timing first: their buffers are not the op's
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    times[name] = cuda_median_ms(run)
                    mem[name] = torch.cuda.max_memory_allocated() / 2**20
                except (torch.cuda.OutOfMemoryError, RuntimeError):  # OOM, or no SDPA backend for this shape
                    times[name], mem[name] = float("nan"), float("nan")
                    torch.cuda.empty_cache()
            times["path"] = pick_path(x, mask.to(dtype), c ** -0.5, lambda p, a, m: run_path(p, a, m, c ** -0.5))
            for name, path in ATTENTION_PATHS.items():
                achieved, fraction = attention_achieved(b, n, c, times[name], dtype, peaks)
                rows.append(kernel_row(f"masked_attention_fwd_bwd path={path}", label, {"triton": times[name]},
                                       achieved, fraction, f"{mem[name]:.0f}"))
            achieved, fraction = attention_achieved(b, n, c, times["triton"], dtype, peaks)
            rows.append(kernel_row("masked_attention_fwd_bwd", label, times, achieved, fraction,
                                   " / ".join(f"{k} {v:.0f}" for k, v in mem.items())))



def bench_attention_configs(shape: Shape, dtypes: Sequence[torch.dtype], rows: List[Row], peaks: Peaks) -> None:
    """Each GPU configuration of the one-tile kernels alone (kernels.launches.fixed_config; forward
    and backward kernels share their tile names): which one wins where."""
    from triton.runtime.errors import OutOfResources

    from kernels.launches import fixed_config
    from kernels.masked_attention import masked_channel_attention, triton_backward, triton_forward
    from kernels.masked_attention.triton_common import table_configs

    b, n, c = shape
    configs = table_configs({0: [*triton_forward.FWD_CONFIGS, *triton_backward.BWD_CONFIGS]})
    for dtype in dtypes:
        x, mask = _attention_inputs(b, n, c, dtype)
        for i, config in enumerate(configs):
            try:
                with fixed_config([triton_forward, triton_backward], config):
                    ms = cuda_median_ms(fwd_bwd(lambda: masked_channel_attention(x, mask, path="triton"), [x, mask]))
            except (OutOfResources, RuntimeError):  # a tile over this GPU's shared memory, or a compile failure
                ms = float("nan")
            achieved, fraction = attention_achieved(b, n, c, ms, dtype, peaks)
            shape_label = f"B{b}xN{n}xC{c} {str(dtype).split('.')[-1]} {config}"
            rows.append(kernel_row(f"masked_attention_fwd_bwd config {i}", shape_label, {"triton": ms}, achieved,
                                   fraction))



__all__ = ["ATTENTION_PATHS", "attention_achieved", "bench_attention", "bench_attention_configs"]
