"""The model registry and its single entry point :func:`build_model`."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from edge_reid.errors import EdgeReidError
from edge_reid.registry import Registry

MODELS: Registry = Registry("model")


def build_model(name: str, num_classes: int, **options: Any):
    """Build the registered model ``name`` with ``num_classes`` training identities.

    ``options`` are the model's named architecture options (``last_stride``,
    ``pretrained`` path, ...); an unknown option is an error naming it.
    """
    factory = MODELS.get(name)
    check_options(name, factory, options)
    model = factory(num_classes=num_classes, **options)
    model.model_name = name
    # options the model records itself (its defaults that matter downstream) + the ones given
    model.model_options = {**dict(getattr(model, "model_options", {}) or {}), **options}
    return model


def check_options(name: str, factory: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Raise a clear error naming any option the factory of model ``name`` does not accept."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = sorted(k for k, p in params.items() if k != "num_classes" and p.kind is not inspect.Parameter.VAR_POSITIONAL)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise EdgeReidError(
            f"Model '{name}' has no option {', '.join(repr(k) for k in unknown)}; its options are: {', '.join(known)}."
        )
