"""The model registry and its single entry point :func:`build_model`."""

from __future__ import annotations

from typing import Any

from edge_reid.registry import Registry

MODELS: Registry = Registry("model")


def build_model(name: str, num_classes: int, **options: Any):
    """Build the registered model ``name`` with ``num_classes`` training identities.

    ``options`` are the model's named architecture options (``last_stride``,
    ``pretrained`` path, ...); an unknown option is an error naming it.
    """
    factory = MODELS.get(name)
    model = factory(num_classes=num_classes, **options)
    model.model_name = name
    model.model_options = dict(options)
    return model
