"""Build the parts of a run (data, model, loss, evaluator) from a validated config.

Each builder calls the owning package's public entry point; nothing here knows about a
particular model, dataset or loss.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Tuple

import torch

from edge_reid.engine.distributed import DistInfo
from edge_reid.errors import EdgeReidError, InvalidInputError

Metrics = Dict[str, float]
METRIC_NAMES = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")


def build_data(cfg: Mapping[str, Any], dist: DistInfo, verbose: bool = True) -> Tuple[Any, Any]:
    """The dataset and the PK-sampled training loader (split across ranks when distributed)."""
    from edge_reid.data import build_dataset
    from edge_reid.data.loader import build_train_loader
    from edge_reid.data.pedmix import parse_pedmix

    dcfg = cfg["data"]
    pedmix = parse_pedmix(dcfg["pedmix"])
    dataset = build_dataset(dcfg["dataset"], dcfg["root"], verbose=verbose and dist.is_main, **dcfg["options"])
    loader = build_train_loader(
        dataset,
        input_size=tuple(dcfg["input_size"]),
        p=dcfg["p"],
        k=dcfg["k"],
        seed=cfg["train"]["seed"],
        workers=dcfg["workers"],
        augment=dcfg["augment"],
        distributed=dist.enabled,
        modality_balanced=dcfg["modality_balanced"],
        with_masks=pedmix is not None and pedmix.position == "mask",
    )
    return dataset, loader


def build_model_from_config(cfg: Mapping[str, Any], num_classes: int) -> torch.nn.Module:
    """``build_model(model.name, num_classes, input_size=data.input_size, **model.options)``."""
    from edge_reid.models import build_model

    options = dict(cfg["model"]["options"])
    size = list(cfg["data"]["input_size"])
    if "input_size" in options and list(options["input_size"]) != size:
        raise InvalidInputError(
            f"Config key 'model.options.input_size' ({options['input_size']}) differs from 'data.input_size' "
            f"({size}); set only data.input_size."
        )
    options["input_size"] = tuple(size)
    return build_model(cfg["model"]["name"], num_classes=num_classes, **options)


def build_composer(cfg: Mapping[str, Any]) -> Any:
    """The ``LossComposer`` for the config's ``loss`` section."""
    from edge_reid.losses import LossComposer

    return LossComposer.from_config({"terms": cfg["loss"]["terms"], "weighting": cfg["loss"]["weighting"]})


def build_evaluate(cfg: Mapping[str, Any], dataset: Any) -> Callable[[torch.nn.Module], Metrics]:
    """A function ``model -> metrics in percent`` over the dataset's query and gallery splits."""
    from edge_reid.data.loader import build_test_loader
    from edge_reid.evaluation import Evaluator

    if not dataset.query or not dataset.gallery:
        raise EdgeReidError(f"Dataset '{cfg['data']['dataset']}' has no query or gallery images to evaluate on.")
    size = tuple(cfg["data"]["input_size"])
    batch = cfg["eval"]["batch_size"]
    if getattr(dataset, "protocol", None):  # visible-infrared: the dataset's protocol, default mode
        from edge_reid.evaluation.vi_evaluator import CrossModalEvaluator

        cross = CrossModalEvaluator(build_test_loader(dataset.query, size, batch),
                                    build_test_loader(dataset.gallery, size, batch),
                                    dataset.gallery, protocol=dataset.protocol, flip=cfg["eval"]["flip"])
        return lambda model: metrics_dict(cross.run(model)["metrics"])
    evaluator = Evaluator(
        build_test_loader(dataset.query, size, batch),
        build_test_loader(dataset.gallery, size, batch),
        dataset.query,
        dataset.gallery,
        flip=cfg["eval"]["flip"],
        rerank=cfg["eval"]["rerank"],
    )

    def evaluate(model: torch.nn.Module) -> Metrics:
        return metrics_dict(evaluator.run(model))

    return evaluate


def metrics_dict(result: Any) -> Metrics:
    """The metrics of an ``EvalResult`` (or a mapping) as ``{name: percent}``."""
    if isinstance(result, Mapping):
        source: Mapping[str, Any] = result
    elif hasattr(result, "metrics") and isinstance(result.metrics, Mapping):
        source = result.metrics
    else:
        source = {name: getattr(result, name) for name in METRIC_NAMES if hasattr(result, name)}
    return {name: float(source[name]) for name in METRIC_NAMES if name in source}


def chance_rank1(dataset: Any) -> float:
    """Rank-1 of random guessing in percent: 1 / number of gallery identities."""
    ids = {r.pid for r in dataset.gallery if r.pid >= 0}
    return 100.0 / max(1, len(ids))
