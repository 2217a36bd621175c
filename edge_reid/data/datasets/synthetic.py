"""``synthetic``: the embedded default dataset (generated once, then parsed as Market-1501).

With no root, the default set is generated deterministically under
``cache_dir()/synthetic/<key>`` (the key hashes the parameters and generator version) the
first time it is asked for; its generator parameters (``num_ids``, ``images_per_id_per_cam``,
... see :func:`~edge_reid.data.synthetic.dataset.default_params`) can be changed through the
dataset's options (a config's ``data.options``). With a root, that Market-1501 tree is parsed
as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional

from edge_reid.data import DATASETS
from edge_reid.data.datasets.base import PathLike
from edge_reid.data.datasets.market1501 import Market1501
from edge_reid.data.synthetic.dataset import (OPTIONAL_PARAMS, default_params, generate_dataset, keyed_params,
                                              params_key, read_manifest)
from edge_reid.errors import InvalidInputError
from edge_reid.utils.paths import cache_dir


def generated_root(kind: str, params: Dict[str, Any], key: str, generate: Callable[..., Any]) -> Path:
    """``cache_dir()/kind/key``, generated there with ``generate(root, **params)`` unless its manifest has ``key``."""
    root = cache_dir() / kind / key
    manifest = read_manifest(root)
    if manifest is None or manifest.get("key") != key:
        generate(root, **params)
    return root


def default_root(**overrides: Any) -> Path:
    """Folder of the synthetic set with these parameters, generated there if missing."""
    params = keyed_params({**default_params(), **overrides})
    return generated_root("synthetic", params, params_key(params), generate_dataset)


@DATASETS.register("synthetic")
class SyntheticDataset(Market1501):
    """The synthetic set: ``root=None`` means the cached default (generated on first use)."""

    name = "synthetic"
    display_name = "Synthetic (Market-1501 layout)"

    def __init__(self, root: Optional[PathLike] = None, verbose: bool = True, **generator: Any) -> None:
        known = {**default_params(), **OPTIONAL_PARAMS}
        unknown = sorted(set(generator) - set(known))
        if unknown:
            raise InvalidInputError(f"The synthetic dataset does not take the option(s) {unknown}; "
                                    f"its options are its generator's parameters {sorted(known)}.")
        if generator and root is not None:
            raise InvalidInputError("Synthetic generator options apply to the generated set only; "
                                    f"{root} is parsed as it is (drop data.root or the options).")
        super().__init__(root=default_root(**generator) if root is None else root, verbose=verbose)
