"""``edge-reid eval``: score a model (a checkpoint, or an untrained one) on a dataset.

Prints the dataset summary and the metrics table, and writes ``metrics.json`` and
``ranked_lists.png`` under ``--out`` (default ``runs/eval-<model>-<dataset>``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from edge_reid.errors import InvalidInputError
from edge_reid.evaluation.vi_command import DEFAULT_DATASETS, add_vi_arguments, run_vi, vi_protocol
from edge_reid.utils.atomic import atomic_write_json

DEFAULT_INPUT_SIZE = (256, 128)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``edge-reid eval``."""
    parser.add_argument("--model", default="resnet50", help="registered model name (ignored with --checkpoint)")
    parser.add_argument("--checkpoint", default=None, help="edge-reid checkpoint; model and input size come from it")
    parser.add_argument("--dataset", default=None,
                        help="registered dataset name (default: synthetic; with --protocol the synthetic visible-infrared set)")
    parser.add_argument("--data-root", default=None, help="dataset folder (the synthetic set generates itself)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help=f"input height and width (default {DEFAULT_INPUT_SIZE[0]} {DEFAULT_INPUT_SIZE[1]})")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="data loading worker processes")
    parser.add_argument("--flip", action="store_true", help="average each embedding with its mirror image's")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    parser.add_argument("--single-gallery-shot", action="store_true",
                        help="classic CUHK03 CMC (one random gallery image per id, 10 repeats)")
    parser.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    parser.add_argument("--out", default=None, help="output folder (default runs/eval-<model>-<dataset>)")
    parser.add_argument("--topk", type=int, default=10, help="gallery images per row of the ranked-list picture")
    parser.add_argument("--num-queries", type=int, default=8, help="rows of the ranked-list picture")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of an untrained model's initial weights")
    add_vi_arguments(parser)


def _check_args(args: argparse.Namespace) -> None:
    """Numeric options must be positive and a given data root must exist."""
    for name in ("batch_size", "topk", "num_queries"):
        if getattr(args, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    if args.workers < 0:
        raise InvalidInputError(f"--workers must be 0 or more, got {args.workers}.")
    if args.input_size is not None and min(args.input_size) < 1:
        raise InvalidInputError(f"--input-size must be two positive integers, got {args.input_size[0]} {args.input_size[1]}.")
    if args.data_root is not None and not Path(args.data_root).expanduser().is_dir():
        raise InvalidInputError(f"The data root {args.data_root} does not exist or is not a folder.")
    if args.out is not None:  # before the whole evaluation runs, not after
        from edge_reid.utils.paths import ensure_writable_dir

        ensure_writable_dir(args.out, "--out")


def _load_checkpoint(args: argparse.Namespace) -> Tuple[Any, str, Tuple[int, int]]:
    """(model in eval mode, model name, input size) from --checkpoint (its metadata decides)."""
    from edge_reid.models.checkpoint import load_model_from_checkpoint

    model, meta, _ = load_model_from_checkpoint(args.checkpoint)
    size = (int(meta.input_size[0]), int(meta.input_size[1]))
    if args.input_size is not None and tuple(args.input_size) != size:
        raise InvalidInputError(
            f"--input-size {args.input_size[0]} {args.input_size[1]} differs from the checkpoint's "
            f"input size {size[0]} {size[1]}; leave it out to use the checkpoint's."
        )
    return model, meta.model, size


def _untrained_model(args: argparse.Namespace, num_train_pids: int) -> Tuple[Any, str, Tuple[int, int]]:
    """(model in eval mode, model name, input size) for --model with seeded random weights."""
    import torch

    from edge_reid.models import build_model

    size = tuple(args.input_size) if args.input_size is not None else DEFAULT_INPUT_SIZE
    torch.manual_seed(args.seed)
    model = build_model(args.model, num_classes=max(1, num_train_pids), input_size=size)
    return model.eval(), args.model, (int(size[0]), int(size[1]))


def _device(name: Optional[str]) -> Any:
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidInputError(f"'{name}' is not a torch device name (try cpu or cuda).") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"Device {name} was asked for but no CUDA GPU is visible.")
    return device


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the table, write metrics.json and ranked_lists.png; 0 on success."""
    _check_args(args)
    from edge_reid.data import build_dataset
    from edge_reid.data.loader import build_test_loader
    from edge_reid.evaluation.evaluator import Evaluator
    from edge_reid.evaluation.visualize import save_ranked_lists

    device = _device(args.device)
    loaded = _load_checkpoint(args) if args.checkpoint is not None else None  # fail fast on a bad file
    if args.dataset is None:
        args.dataset = DEFAULT_DATASETS.get(args.protocol, "synthetic")
    dataset = build_dataset(args.dataset, args.data_root, verbose=False)
    print(dataset.summary())
    model, model_name, input_size = loaded or _untrained_model(args, dataset.num_train_pids)
    model.to(device)
    protocol = vi_protocol(args, getattr(dataset, "protocol", None))
    if protocol is not None:
        return run_vi(args, protocol, args.dataset, model, model_name, input_size, device,
                      lambda name, root, **options: dataset if not options else build_dataset(name, root, verbose=False,
                                                                                                 **options))

    evaluator = Evaluator(
        build_test_loader(dataset.query, input_size, args.batch_size, workers=args.workers),
        build_test_loader(dataset.gallery, input_size, args.batch_size, workers=args.workers),
        dataset.query,
        dataset.gallery,
        flip=args.flip,
        rerank=args.rerank,
        metric=args.metric,
        device=device,
        single_gallery_shot=args.single_gallery_shot,
    )
    start = time.perf_counter()
    result = evaluator.run(model)
    seconds = time.perf_counter() - start
    title = f"{model_name} on {args.dataset}" + (" (flip)" if args.flip else "") + (" (re-ranked)" if args.rerank else "")
    print(result.table(title=title))
    print(result.skipped_line())

    out = Path(args.out) if args.out else Path("runs") / f"eval-{model_name}-{args.dataset}"
    picture = save_ranked_lists(
        result.distmat, result.query_records, result.gallery_records, out / "ranked_lists.png",
        topk=args.topk, num_queries=args.num_queries,
        q_pids=result.q_pids, g_pids=result.g_pids, q_camids=result.q_camids, g_camids=result.g_camids,
    )
    report: Dict[str, Any] = {
        "metrics": result.metrics,
        "cmc": [float(v) for v in result.cmc],
        "model": model_name,
        "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "dataset": args.dataset,
        "data_root": str(dataset.root),
        "input_size": list(input_size),
        "flip": bool(args.flip),
        "rerank": bool(args.rerank),
        "single_gallery_shot": bool(args.single_gallery_shot),
        "metric": "euclidean (squared), re-ranked" if args.rerank else args.metric,
        **result.counts(),  # queries evaluated / skipped unreadable / skipped without a match, gallery used
        "seconds": round(seconds, 3),
    }
    metrics_path = out / "metrics.json"
    atomic_write_json(metrics_path, report)
    print(f"metrics: {metrics_path}")
    print(f"ranked lists: {picture}")
    return 0
