"""Dataset parsers, one per module, found automatically.

Every module in this folder (except private ``_*`` ones) is imported when the package is
imported; a parser registers itself with ``@DATASETS.register("name")``, so adding a file
is all it takes to add a dataset.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any, List

from edge_reid.data import DATASETS
from edge_reid.data.datasets.base import ImageRecord, ReIDDataset
from edge_reid.errors import InvalidInputError


def _discover() -> List[str]:
    """Import every parser module of this package so that each registers itself."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        importlib.import_module(f"{__name__}.{info.name}")
        found.append(info.name)
    return found


def build_dataset(name: str, root: Any = None, verbose: bool = True, **kwargs: Any) -> ReIDDataset:
    """Parse the registered dataset ``name`` under ``root``; print its summary when verbose.

    ``kwargs`` are the dataset's own options (``variant`` for CUHK03, ``merge_val`` for
    MSMT17, ...); an option the dataset does not take is a clear error naming it.
    """
    factory = DATASETS.get(name)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        params = signature.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = sorted(k for k in kwargs if k not in params)
        if unknown and not takes_any:
            options = sorted(k for k in params if k not in ("self", "root", "verbose"))
            raise InvalidInputError(
                f"Dataset '{name}' does not take the option(s) {unknown}; "
                f"its options are {options or 'none'}."
            )
    return factory(root=root, verbose=verbose, **kwargs)


DISCOVERED: List[str] = _discover()

__all__ = ["DATASETS", "DISCOVERED", "ImageRecord", "ReIDDataset", "build_dataset"]
