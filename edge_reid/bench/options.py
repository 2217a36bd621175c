"""Options of ``edge-reid bench`` (and of the three scripts in ``benchmarks/``) and their defaults.

:func:`add_arguments` declares them; :func:`apply_defaults` fills what was not given from the
quick or ``--full`` preset (or ``--serving``'s) and refuses unknown stages, backends, precisions.
"""

from __future__ import annotations

import argparse
from typing import List, Tuple

from edge_reid.bench.artifacts import PRECISION_OF_KEY
from edge_reid.bench.complexity_table import PAPER_NUM_CLASSES
from edge_reid.bench.serving import SERVING_BACKENDS, apply_serving_preset
from edge_reid.errors import InvalidInputError

STAGES = ("complexity", "latency", "accuracy")


def parse_hw(text: str) -> Tuple[int, int]:
    """``HxW`` (e.g. ``256x128``) as ``(H, W)``; an argparse type, so a bad value is one sentence and exit 2."""
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 256x128; got '{text}'") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"sizes must be positive; got '{text}'")
    return h, w


def _ints(text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers; got '{text}'") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers; got '{text}'")
    return values


def _names(text: str) -> List[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edge-reid bench`` (and of the three scripts in ``benchmarks/``)."""
    parser.add_argument("--out", default="runs/bench", help="output folder for CSV/JSON/PNG (default runs/bench)")
    parser.add_argument("--full", action="store_true",
                        help="the whole grid: every registry model, batches 1,8,32 and the profile max, "
                             "every precision, more iterations")
    parser.add_argument("--stages", type=_names, default=None,
                        help="comma list of complexity,latency,accuracy (default all; --serving: latency)")
    parser.add_argument("--serving", action="store_true",
                        help="the serving grid: GPU - eager, torch.compile max-autotune, CUDA graphs, AOTInductor "
                             "packages in fp32/fp16/bf16 at batch 1,8,32,128, VisNet (fast fusion) beside ResNet50; "
                             "CPU - the AOTInductor package beside ONNX Runtime FP32/INT8 and eager PyTorch")
    parser.add_argument("--fusion-impl", choices=("reference", "fast"), default=None,
                        help="run VisNet's fusion in this form (same weights; --serving on a GPU: fast)")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--artifacts", action="append",
                     help="an 'edge-reid build' output folder (reads its manifest.json); repeat it to put several "
                          "trained models on one table and plot")
    src.add_argument("--checkpoint", help="an edge-reid checkpoint to export and benchmark")
    src.add_argument("--model", help="a registry model to benchmark untrained (latency only is meaningful)")
    parser.add_argument("--input-size", type=parse_hw, default=None, help="HxW for --model (default 256x128)")
    parser.add_argument("--models", type=_names, default=None,
                        help="extra registry models timed untrained beside the main one (default: none; all with --full)")
    parser.add_argument("--batches", type=_ints, default=None, help="batch sizes (default 1,8; --full adds 32 and the profile max)")
    parser.add_argument("--backends", type=_names, default=None,
                        help="torch-eager,torch-compile,torch-cudagraph,aoti,onnxruntime,tensorrt "
                             "(default: torch-eager,onnxruntime,tensorrt; --full adds torch-compile)")
    parser.add_argument("--precisions", type=_names, default=None,
                        help="fp32,fp16,bf16,int8-cpu,int8-trt (default fp32,fp16,int8-cpu; --full adds int8-trt)")
    parser.add_argument("--iters", type=int, default=None, help="timed iterations per point (default 10; --full 50)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 2; --full 5)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="cap on timed seconds per point, at least 3 calls (default 5; --full 60)")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of every backend, the same for all so ratios are fair (default 1: "
                             "on a shared CPU more threads spin against other processes; 0 = each library's default)")
    parser.add_argument("--plot-batch", type=int, default=1, help="batch whose latency goes on the plot (default 1)")
    parser.add_argument("--eval-dataset", default="synthetic", help="dataset for Rank-1/mAP (default synthetic)")
    parser.add_argument("--eval-limit", type=int, default=None, help="query+gallery images evaluated (default 200; --full 400)")
    parser.add_argument("--calib", default="synthetic:train", help="INT8 calibration: dataset:split or 'random' (smoke tests)")
    parser.add_argument("--calib-images", type=int, default=None, help="calibration crops (default 64; --full 256)")
    parser.add_argument("--complexity-models", type=_names, default=None, help="models for the complexity table (default: all)")
    parser.add_argument("--complexity-input", type=parse_hw, default=(256, 128), help="HxW for params/MACs (default 256x128)")
    parser.add_argument("--num-classes", type=int, default=PAPER_NUM_CLASSES,
                        help=f"classifier size for params (default {PAPER_NUM_CLASSES}, Market-1501)")


def apply_defaults(args: argparse.Namespace) -> None:
    """Fill the quick / --full defaults and check the choices."""
    full = args.full
    if getattr(args, "serving", False):
        import torch

        apply_serving_preset(args, torch.cuda.is_available())
    args.stages = args.stages or list(STAGES)
    args.batches = args.batches or [1, 8]
    # torch.compile takes minutes per batch shape on a 2-core CPU: in the quick default only with --backends
    args.backends = args.backends or (["torch-eager", "torch-compile", "onnxruntime", "tensorrt"] if full
                                      else ["torch-eager", "onnxruntime", "tensorrt"])
    args.precisions = args.precisions or (["fp32", "fp16", "int8-cpu", "int8-trt", "int8-qat-cpu", "int8-qat-trt"] if full
                                          else ["fp32", "fp16", "int8-cpu", "int8-qat-cpu"])
    args.iters = args.iters or (50 if full else 10)
    args.warmup = args.warmup if args.warmup is not None else (5 if full else 2)
    args.max_seconds = args.max_seconds if args.max_seconds is not None else (60.0 if full else 5.0)
    args.eval_limit = args.eval_limit or (400 if full else 200)
    args.calib_images = args.calib_images or (256 if full else 64)
    for option, values, known in (("--stages", args.stages, STAGES),
                                  ("--backends", args.backends, ("torch-eager", "torch-compile", "onnxruntime", "tensorrt")
                                   + SERVING_BACKENDS),
                                  ("--precisions", args.precisions, tuple(PRECISION_OF_KEY.values()) + ("bf16",))):
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InvalidInputError(f"Unknown {option} value(s) {unknown}; choose from {', '.join(known)}.")
    if "fp32" not in args.precisions:
        args.precisions = ["fp32"] + list(args.precisions)  # every variant derives from FP32; the baseline needs it
    if "accuracy" in args.stages and args.plot_batch not in args.batches:
        args.batches = sorted(set(args.batches) | {args.plot_batch})
