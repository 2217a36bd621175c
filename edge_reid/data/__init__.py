"""Data: dataset parsers (a registry), image loading, PK sampling and transforms.

``build_dataset(name, root=None, verbose=True, **kwargs)`` is the entry point for datasets;
``DATASETS.names()`` lists the registered ones. Every module in
``edge_reid/data/datasets/`` is imported (and so registers itself) the first time this
package is imported. Loaders, samplers and transforms (which need torch) live in
``edge_reid.data.loader``, ``.sampler`` and ``.transforms`` and are imported on demand.
"""

from edge_reid.registry import Registry

#: Dataset name -> class (or factory) called as ``factory(root=..., verbose=..., **kwargs)``.
#: Defined before the parsers are discovered so that each can import it while registering.
DATASETS: Registry = Registry("dataset")

from edge_reid.data.datasets import build_dataset  # noqa: E402  (discovers the parsers)
from edge_reid.data.datasets.base import ImageRecord, ReIDDataset  # noqa: E402

__all__ = ["DATASETS", "ImageRecord", "ReIDDataset", "build_dataset"]
