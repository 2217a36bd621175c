"""``edge-reid export``: a checkpoint to one ONNX file (FP32), checked against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edge-reid export``."""
    parser.add_argument("--checkpoint", required=True, help="edge-reid checkpoint to export")
    parser.add_argument("--out", help="ONNX file to write (default: beside the checkpoint, .onnx)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (17 suits TensorRT 8.6-10.x)")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    parser.add_argument("--dynamo", action="store_true", help="use torch.onnx's dynamo exporter (opset >= 18)")
    parser.add_argument("--max-abs", type=float, default=1e-4, help="parity gate vs PyTorch (max abs diff)")


def run(args: argparse.Namespace) -> int:
    """Export, then compare ONNX Runtime with PyTorch on random crops; fail over the gate."""
    import numpy as np
    import torch

    from edge_reid.deploy import parity as P
    from edge_reid.deploy.compat import check_tensorrt_compat
    from edge_reid.deploy.onnx_export import OnnxExporter
    from edge_reid.models.checkpoint import load_model_from_checkpoint
    from edge_reid.runtime import load_embedder
    from edge_reid.runtime.inputs import example_ids

    model, meta, _ = load_model_from_checkpoint(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    result = OnnxExporter(args.opset, simplify=not args.no_simplify, dynamo=args.dynamo).export(model, meta, out)
    x = np.random.default_rng(0).random((4, 3, *meta.input_size), dtype=np.float32)
    ids = example_ids(meta, len(x))  # camera ids / modality where the model takes them
    with torch.inference_mode():
        ref = model(torch.from_numpy(x), **{k: torch.from_numpy(v) for k, v in ids.items()}).numpy()
    got = load_embedder(out, "onnxruntime").embed(x, **ids)
    report = P.compare(out.name, "fp32", "torch", ref, got, {"fp32_max_abs": args.max_abs})
    compat = check_tensorrt_compat(out)
    print(f"Wrote {out} (opset {result.opset}, simplified: {result.simplified}, exporter: {result.exporter}).")
    print(f"ONNX Runtime vs PyTorch: max abs diff {report.max_abs_diff:.3g}, min cosine {report.cosine_min:.6f}.")
    print("TensorRT parser compatibility: " + ("ok" if compat.ok else "; ".join(compat.problems[:3])))
    P.enforce([report])
    return 0
