"""The visible-infrared part of ``edge-reid eval``: ``--protocol sysu|regdb`` and its options.

SYSU-MM01: ``--mode all|indoor``, ``--shots 1|10``, ``--trials`` (10). RegDB: ``--direction
v2t|t2v``, ``--split 1..10|all`` (``all`` scores the one model on every split's test lists and
averages; a model trained on one split has seen the other splits' test ids, so ``all`` is for
untrained models or models trained elsewhere). Without ``--dataset`` the synthetic
visible-infrared set of the protocol's layout is used. ``metrics.json`` holds the averaged
metrics and every trial's (or split's).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from edge_reid.errors import InvalidInputError
from edge_reid.utils.atomic import atomic_write_json

DEFAULT_DATASETS = {"sysu": "synthetic_vi", "regdb": "synthetic_vi_regdb"}


def add_vi_arguments(parser: argparse.ArgumentParser) -> None:
    """The visible-infrared options of ``edge-reid eval``."""
    group = parser.add_argument_group("visible-infrared protocols")
    group.add_argument("--protocol", choices=("sysu", "regdb"), default=None,
                       help="SYSU-MM01 or RegDB cross-modality protocol (default: the dataset's own, if any)")
    group.add_argument("--mode", choices=("all", "indoor"), default="all", help="SYSU-MM01 search mode")
    group.add_argument("--shots", type=int, choices=(1, 10), default=1, help="SYSU-MM01 single- or multi-shot gallery")
    group.add_argument("--trials", type=int, default=10, help="SYSU-MM01 seeded gallery trials averaged")
    group.add_argument("--direction", choices=("v2t", "t2v"), default="v2t",
                       help="RegDB: visible-to-thermal or thermal-to-visible")
    group.add_argument("--split", default="1", help="RegDB split 1..10, or 'all' to average the ten")


def vi_protocol(args: argparse.Namespace, dataset_protocol: Any) -> Any:
    """The protocol to run: --protocol, else the dataset's own (None: single-modality)."""
    if args.protocol is not None and dataset_protocol is None:
        raise InvalidInputError(f"--protocol {args.protocol} needs a visible-infrared dataset (sysu_mm01, regdb, "
                                f"synthetic_vi, synthetic_vi_regdb), not '{args.dataset}'.")
    if args.protocol is not None and dataset_protocol is not None and args.protocol != dataset_protocol:
        raise InvalidInputError(f"--protocol {args.protocol} does not fit the dataset, whose protocol is {dataset_protocol}.")
    return args.protocol or dataset_protocol


def _splits(value: str) -> List[int]:
    if value == "all":
        return list(range(1, 11))
    if not value.isdigit() or not 1 <= int(value) <= 10:
        raise InvalidInputError(f"--split must be a number from 1 to 10 or 'all', got {value!r}.")
    return [int(value)]


def run_vi(args: argparse.Namespace, protocol: str, dataset_name: str, model: Any, model_name: str,
           input_size: Tuple[int, int], device: Any, build: Callable[..., Any]) -> int:
    """Score ``model`` with the protocol, print the table, write metrics.json; 0 on success.

    ``build(name, root, **options)`` parses the dataset (RegDB once per split).
    """
    from edge_reid.data.loader import build_test_loader
    from edge_reid.evaluation.metrics import format_metrics_table
    from edge_reid.evaluation.vi_evaluator import CrossModalEvaluator
    from edge_reid.evaluation.vi_protocol import average_metrics

    if args.trials < 1:
        raise InvalidInputError(f"--trials must be at least 1, got {args.trials}.")
    runs: List[Dict[str, Any]] = []
    start = time.perf_counter()
    options_list = ([{}] if protocol == "sysu" else
                    [{"split": s, "direction": args.direction} for s in _splits(str(args.split))])
    for options in options_list:
        dataset = build(dataset_name, args.data_root, **options)
        loaders = [build_test_loader(records, input_size, args.batch_size, workers=args.workers)
                   for records in (dataset.query, dataset.gallery)]
        evaluator = CrossModalEvaluator(*loaders, dataset.gallery, protocol=protocol, mode=args.mode,
                                        shots=args.shots, trials=args.trials, flip=args.flip, device=device)
        runs.append({**options, **evaluator.run(model)})
    seconds = time.perf_counter() - start
    if protocol == "sysu":
        result = runs[0]
        label = f"SYSU-MM01 {args.mode}-search {'single' if args.shots == 1 else 'multi'}-shot, {args.trials} trials"
        report: Dict[str, Any] = {"metrics": result["metrics"], "trials": result["trials"], "mode": args.mode,
                                  "shots": args.shots, "num_query": result["num_query"]}
    else:
        per_split = [{"split": r["split"], **r["metrics"]} for r in runs]
        label = f"RegDB {args.direction}, split(s) {', '.join(str(r['split']) for r in runs)}"
        report = {"metrics": average_metrics([r["metrics"] for r in runs]), "trials": per_split,
                  "direction": args.direction, "splits": [r["split"] for r in runs]}
    print(format_metrics_table(report["metrics"], title=f"{model_name} on {dataset_name}: {label}"))
    out = Path(args.out) if args.out else Path("runs") / f"eval-{model_name}-{dataset_name}"
    report.update({"protocol": protocol, "model": model_name, "dataset": dataset_name,
                   "checkpoint": str(args.checkpoint) if args.checkpoint else None,
                   "input_size": list(input_size), "flip": bool(args.flip), "seconds": round(seconds, 3),
                   "distance": "-q.g of L2-normalised features"})
    atomic_write_json(out / "metrics.json", report)
    print(f"metrics: {out / 'metrics.json'}")
    return 0
