"""``edge-reid build``: the export-and-engines pipeline end to end (see :mod:`edge_reid.deploy.pipeline`).

With no arguments it runs the embedded default on a fresh CPU machine: VisNet trained once on
the synthetic set, synthetic calibration and evaluation data, FP32/FP16/INT8 (both Q/DQ
flavours), TensorRT when importable with a GPU (else ONNX Runtime), parity gates and a latency
/ accuracy table, then prints where the artifacts are.
"""

from __future__ import annotations

import argparse
import logging

from edge_reid.deploy.parity import DEFAULT_GATES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edge-reid build``."""
    from edge_reid.deploy.formats import FORMATS, formats_table

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "formats (--format):\n" + formats_table()
    parser.add_argument("--format", choices=tuple(FORMATS), default="onnx",
                        help="what to build: onnx (ONNX FP32/FP16/INT8 and TensorRT engines) or aoti "
                             "(AOTInductor .pt2 packages); the table below says what each supports")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="--format aoti: the device the packages are compiled for (default: cuda when visible)")
    parser.add_argument("--checkpoint", help="edge-reid checkpoint to deploy (default: the cached quick VisNet run)")
    parser.add_argument("--model", help="registry model to export untrained when no checkpoint is given")
    parser.add_argument("--out", help="output folder (default: a new folder under the cache)")
    parser.add_argument("--precisions", default=None,
                        help="comma list; onnx: fp32, fp16, int8 (default all); aoti: fp32 on a CPU, "
                             "fp32, fp16, bf16 on a GPU (default all the device supports)")
    parser.add_argument("--batch", default="1,8,32", help="engine batch profile min,opt,max (default 1,8,32)")
    calib = parser.add_mutually_exclusive_group()
    calib.add_argument("--calib-dir", help="folder of person crops for INT8 calibration")
    calib.add_argument("--calib-split", help="dataset split for INT8 calibration, e.g. synthetic:train")
    calib.add_argument("--calib-random", action="store_true", help="calibrate on random pixels (smoke tests only)")
    parser.add_argument("--calib-images", type=int, default=256, help="number of calibration crops (default 256)")
    from edge_reid.deploy.int8 import AUTO_FLOAT, FLOAT_RULES

    kinds = "; ".join(f"{name}: {what}" for name, (what, _) in FLOAT_RULES.items())
    parser.add_argument("--int8-keep-float", default=AUTO_FLOAT,
                        help="layers INT8 keeps in float: auto (default: the smallest set that meets the INT8 gate, "
                             "found by a per-layer sensitivity analysis; table int8_sensitivity.csv beside the "
                             f"artifacts), or a comma list of kinds ({kinds}), or none")
    parser.add_argument("--qat", action="store_true",
                        help="also INT8 by quantization-aware training: fine-tune the checkpoint with fake-quantized "
                             "layers on its training split (model_int8_qat_{trt,cpu}.onnx)")
    parser.add_argument("--qat-config", help="training config whose qat section (epochs, lr, images, batch_size) "
                                             "to use (default: the checkpoint's own)")
    parser.add_argument("--qat-start", choices=("ptq", "all"), default=None,
                        help="ptq: QAT keeps the post-training float set; all: every layer fake-quantized, the float "
                             "set chosen again on the fine-tuned graph (int8_qat_sensitivity.csv); default: ptq")
    parser.add_argument("--eval-dataset", default="synthetic", help="dataset for Rank-1/mAP ('none' to skip)")
    parser.add_argument("--eval-limit", type=int, default=400, help="query+gallery images used for parity/Rank-1")
    parser.add_argument("--backend", choices=("auto", "onnxruntime", "tensorrt"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = default)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (17 suits TensorRT 8.6-10.x)")
    parser.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT workspace limit in MiB")
    parser.add_argument("--dla-core", type=int, default=None, help="Jetson DLA core (GPU fallback on)")
    parser.add_argument("--latency-iters", type=int, default=10)
    parser.add_argument("--verify-engine", metavar="ENGINE",
                        help="only check that ENGINE (with its side file) runs here: TensorRT version and GPU")
    parser.add_argument("--verify-package", metavar="PT2",
                        help="only check that an AOTInductor package loads and runs here (versions, device)")
    parser.add_argument("--fp32-max-abs", type=float, default=DEFAULT_GATES["fp32_max_abs"], help="FP32 gate")
    parser.add_argument("--fp16-min-cosine", type=float, default=DEFAULT_GATES["fp16_min_cosine"], help="FP16 gate")
    parser.add_argument("--int8-min-cosine", type=float, default=DEFAULT_GATES["int8_min_cosine"], help="INT8 gate")


def run(args: argparse.Namespace) -> int:
    """Run the build; parity failures and bad inputs become one sentence (exit 2) via the CLI."""
    from edge_reid.deploy.int8 import parse_float_rules
    from edge_reid.deploy.formats import get_format
    from edge_reid.deploy.pipeline import BuildConfig, parse_batch, parse_precisions

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.verify_engine:
        from edge_reid.deploy.engine_meta import verify_engine

        info = verify_engine(args.verify_engine)
        print(f"Engine {args.verify_engine} ({info.precision}, TensorRT {info.tensorrt_version}) runs on this machine.")
        return 0
    if args.verify_package:
        return _verify_package(args.verify_package)
    fmt = get_format(args.format)
    precisions = parse_precisions(args.precisions or "fp32,fp16,int8") if fmt.name == "onnx" else \
        tuple(v for v in (args.precisions or "").split(",") if v.strip())
    cfg = BuildConfig(
        checkpoint=args.checkpoint, model=args.model, out=args.out,
        precisions=precisions, batch=parse_batch(args.batch),
        calib_dir=args.calib_dir, calib_split=args.calib_split, calib_random=args.calib_random,
        calib_images=args.calib_images, int8_keep_float=parse_float_rules(args.int8_keep_float),
        qat=args.qat, qat_config=args.qat_config, qat_settings={"start": args.qat_start} if args.qat_start else {},
        eval_dataset=None if str(args.eval_dataset).lower() == "none" else args.eval_dataset,
        eval_limit=args.eval_limit, backend=args.backend, threads=args.threads, opset=args.opset,
        workspace_mb=args.workspace_mb, dla_core=args.dla_core, latency_iters=args.latency_iters,
        gates={"fp32_max_abs": args.fp32_max_abs, "fp16_min_cosine": args.fp16_min_cosine,
               "int8_min_cosine": args.int8_min_cosine},
    )
    fmt.build(cfg, device=args.device)
    return 0


def _verify_package(path: str) -> int:
    """Load an AOTInductor package and embed one random batch; any problem is one sentence (exit 2)."""
    import numpy as np

    from edge_reid.runtime import load_embedder

    embedder = load_embedder(path, "aoti")
    out = embedder.embed(np.random.default_rng(0).random((2, 3, *embedder.meta.input_size), dtype=np.float32))
    print(f"Package {path} ({embedder.meta.model}, {embedder.precision}, {embedder.device}; fused ops: "
          f"{embedder.fusion or 'n/a'}) runs here: embeddings {out.shape[0]} x {out.shape[1]}.")
    return 0
