"""The training config's schema: every section and key with its type and default, and the checks.

A key the schema does not know, or a value of the wrong type or out of range, is an error that
names the key by its dotted name (``train.epochs``). A few sections are free-form because
another part owns their meaning (``model.options`` goes to ``build_model``, ``loss`` to the
``LossComposer``, ``data.augment`` to the train transform). Reading files, ``_base_`` inheritance
and ``--set`` overrides are :mod:`edge_reid.engine.config`'s.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any, Dict, Mapping, Optional, Tuple

from edge_reid.errors import InvalidInputError

Config = Dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Field:
    """One config value: its default, the Python types it may take, allowed choices."""

    default: Any
    types: Tuple[type, ...]
    choices: Optional[Tuple[Any, ...]] = None
    optional: bool = False  # None allowed
    free: bool = False  # a dict/list whose inner keys are not checked here
    length: Optional[int] = None  # lists of fixed length
    item_type: Optional[type] = None  # type of list items


def _f(default: Any, *types: type, **kw: Any) -> Field:
    return Field(default, types or (type(default),), **kw)


#: Every key a training config may hold, with its default.
SCHEMA: Dict[str, Any] = {
    "name": _f(None, str, optional=True),
    "model": {
        "name": _f("resnet50", str),
        "options": _f({}, dict, free=True),
    },
    "data": {
        "dataset": _f("synthetic", str),
        "root": _f(None, str, optional=True),
        "input_size": _f([256, 128], list, length=2, item_type=int),
        "p": _f(16, int),
        "k": _f(4, int),
        "workers": _f(2, int),
        "augment": _f(None, dict, optional=True, free=True),
        "options": _f({}, dict, free=True),  # the dataset's own options (build_dataset kwargs)
        "modality_balanced": _f(False, bool),  # visible-infrared: P ids x (K visible + K infrared)
        "pedmix": _f(None, dict, optional=True, free=True),  # TMPA's PedMix (edge_reid.data.pedmix)
    },
    "loss": {
        "terms": _f([{"name": "cross_entropy", "label_smoothing": 0.1}], list, free=True),
        "weighting": _f({"type": "static"}, dict, free=True),
    },
    "optim": {
        "name": _f("adam", str, choices=("adam", "sgd")),
        "lr": _f(3.5e-4, float),
        "weight_decay": _f(5e-4, float),
        "momentum": _f(0.9, float),
        "nesterov": _f(False, bool),
        "backbone_lr_factor": _f(1.0, float),  # lr of everything but the model's `head` (AGW: 0.1)
        "bias_lr_factor": _f(1.0, float),  # learning-rate multiple of the bias parameters (FusionReID: 2)
    },
    "schedule": {
        "type": _f("step", str, choices=("step", "cosine")),
        "warmup_epochs": _f(0, int),
        "warmup_factor": _f(0.1, float),
        "milestones": _f([40, 80], list, item_type=int),
        "gamma": _f(0.1, float),
        "min_lr_factor": _f(0.0, float),
    },
    "train": {
        "epochs": _f(120, int),
        "iters_per_epoch": _f(0, int),  # 0: one full pass of the PK sampler
        "seed": _f(0, int),
        "amp": _f("none", str, choices=("none", "bf16", "fp16")),
        "grad_clip": _f(None, float, optional=True),
        "eval_every": _f(0, int),  # 0: evaluate only after the last epoch
        "eval_at_start": _f(False, bool),
        "checkpoint_every": _f(1, int),
        "checkpoint_iters": _f(0, int),  # 0: only at epoch ends
        "loss_init_batches": _f(0, int),  # batches of the initial pass for IBB (0: one epoch)
        "max_nonfinite": _f(10, int),  # bad steps (NaN/inf/diverged loss or gradients) in a row that stop a run
        "divergence_factor": _f(100.0, float),  # a loss above this x the first step's (floored at 1) is bad; 0: off
        "log_every": _f(20, int),
        "device": _f("auto", str),
        "deterministic": _f(True, bool),
        "threads": _f(0, int),  # torch CPU threads; 0 leaves the default
        "find_unused_parameters": _f(False, bool),  # DDP: models with outputs no loss uses
    },
    "eval": {
        "enabled": _f(True, bool),  # false: no evaluation at all (no query/gallery needed)
        "flip": _f(False, bool),
        "rerank": _f(False, bool),
        "batch_size": _f(64, int),
    },
    "qat": {  # quantization-aware fine-tuning (edge-reid build --qat, edge_reid.deploy.qat)
        "epochs": _f(2, int),
        "lr": _f(1e-5, float),  # weights
        "scale_lr": _f(1e-2, float),  # activation log-scales (LSQ-style learned steps)
        "images": _f(512, int),  # crops of the training split used
        "batch_size": _f(32, int),
    },
    "output": {
        "dir": _f(None, str, optional=True),
        "tensorboard": _f(True, bool),
    },
}


def defaults() -> Config:
    """The config every file starts from (a fresh deep copy)."""

    def walk(node: Mapping[str, Any]) -> Config:
        return {k: walk(v) if isinstance(v, dict) else copy.deepcopy(v.default) for k, v in node.items()}

    return walk(SCHEMA)



def validate(cfg: Mapping[str, Any]) -> None:
    """Check every key is known and every value has the schema's type; errors name the key."""
    _validate_node(cfg, SCHEMA, "")
    for dotted in ("data.p", "data.k", "train.epochs", "train.checkpoint_every", "eval.batch_size"):
        if _get(cfg, dotted) < 1:
            raise InvalidInputError(f"Config key '{dotted}' must be at least 1, got {_get(cfg, dotted)}.")
    for dotted in ("data.workers", "train.iters_per_epoch", "train.eval_every", "train.checkpoint_iters", "train.loss_init_batches",
                   "train.max_nonfinite", "train.log_every", "schedule.warmup_epochs", "train.threads"):
        if _get(cfg, dotted) < 0:
            raise InvalidInputError(f"Config key '{dotted}' must not be negative, got {_get(cfg, dotted)}.")
    if any(v <= 0 for v in cfg["data"]["input_size"]):
        raise InvalidInputError("Config key 'data.input_size' must be two positive integers (height, width).")
    if cfg["optim"]["lr"] <= 0:
        raise InvalidInputError(f"Config key 'optim.lr' must be a positive number, got {cfg['optim']['lr']!r}.")
    _validate_pedmix(cfg["data"])
    for dotted in ("train.divergence_factor", "optim.weight_decay", "optim.momentum", "schedule.warmup_factor", "schedule.gamma",
                   "schedule.min_lr_factor"):
        if _get(cfg, dotted) < 0:
            raise InvalidInputError(f"Config key '{dotted}' must not be negative, got {_get(cfg, dotted)}.")


def _validate_pedmix(data: Mapping[str, Any]) -> None:
    """``data.pedmix`` checked at config time; mixing across modalities needs modality-balanced batches."""
    from edge_reid.data.pedmix import parse_pedmix

    if parse_pedmix(data.get("pedmix")) is not None and not data["modality_balanced"]:
        raise InvalidInputError("Config key 'data.pedmix' needs 'data.modality_balanced: true' (PedMix mixes each "
                                "image with a same-identity image of the other modality in its batch).")


def _validate_node(node: Any, schema: Mapping[str, Any], prefix: str) -> None:
    if not isinstance(node, Mapping):
        raise InvalidInputError(f"Config key '{prefix.rstrip('.')}' must be a section (a mapping).")
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            raise InvalidInputError(f"Unknown config key '{dotted}'.")
        spec = schema[key]
        if isinstance(spec, dict):
            _validate_node(value, spec, dotted + ".")
        else:
            node_value = _check_value(value, spec, dotted)
            if node_value is not value and isinstance(node, dict):
                node[key] = node_value


def _check_value(value: Any, spec: Field, dotted: str) -> Any:
    """Return ``value`` (ints widened to float where a float is expected) or raise naming ``dotted``."""
    if value is None:
        if spec.optional:
            return None
        raise InvalidInputError(f"Config key '{dotted}' must be set (got null).")
    if float in spec.types and isinstance(value, str):
        try:  # YAML 1.1 reads '1e-4' as a string; accept it as the number it spells
            value = float(value)
        except ValueError:
            pass
    if float in spec.types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"Config key '{dotted}' must be a finite number, got {value!r}.")
    ok = any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in spec.types)
    if not ok:
        wanted = " or ".join(_type_name(t) for t in spec.types) + (" or null" if spec.optional else "")
        raise InvalidInputError(
            f"Config key '{dotted}' must be {wanted}, got {_type_name(type(value))} {value!r}."
        )
    if spec.choices is not None and value not in spec.choices:
        raise InvalidInputError(f"Config key '{dotted}' must be one of {list(spec.choices)}, got {value!r}.")
    if isinstance(value, list) and not spec.free:
        if spec.length is not None and len(value) != spec.length:
            raise InvalidInputError(f"Config key '{dotted}' must be a list of {spec.length} values, got {value!r}.")
        if spec.item_type is not None:
            for item in value:
                if not isinstance(item, spec.item_type) or isinstance(item, bool):
                    raise InvalidInputError(
                        f"Config key '{dotted}' must be a list of {_type_name(spec.item_type)}s, got {value!r}."
                    )
    return value


def _type_name(t: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true/false", dict: "a mapping",
            list: "a list", type(None): "null"}.get(t, t.__name__)


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node



__all__ = ["Config", "Field", "SCHEMA", "defaults", "validate"]
