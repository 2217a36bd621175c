"""Models: backbones, heads (BNNeck) and the registry.

``build_model(name, num_classes, **options)`` is the entry point; ``MODELS.names()`` lists
what is registered. Importing this package registers every model.
"""

from edge_reid.models.registry import MODELS, build_model
from edge_reid.models import baselines  # noqa: F401  (registers the baselines)

__all__ = ["MODELS", "build_model"]
