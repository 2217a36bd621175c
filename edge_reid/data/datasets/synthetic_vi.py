"""``synthetic_vi`` and ``synthetic_vi_regdb``: the embedded visible-infrared sets.

With no root the default set is generated once, deterministically, under
``cache_dir()/synthetic_vi/<key>`` and parsed as SYSU-MM01 (``synthetic_vi``) or RegDB
(``synthetic_vi_regdb``, with its ``split`` and ``direction``); with a root, that tree is
parsed as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from edge_reid.data import DATASETS
from edge_reid.data.datasets.base import PathLike
from edge_reid.data.datasets.regdb import RegDB
from edge_reid.data.datasets.sysu_mm01 import SYSUMM01
from edge_reid.data.datasets.synthetic import generated_root
from edge_reid.data.synthetic.vi_dataset import default_vi_params, generate_vi_dataset, vi_params_key


def default_vi_root(layout: str = "sysu", **overrides: Any) -> Path:
    """Folder of the visible-infrared set with these parameters, generated there if missing."""
    params = {**default_vi_params(layout), **overrides}
    return generated_root("synthetic_vi", params, vi_params_key(params), generate_vi_dataset)


@DATASETS.register("synthetic_vi")
class SyntheticVI(SYSUMM01):
    """The synthetic visible-infrared set in the SYSU-MM01 layout (``root=None``: the default)."""

    name = "synthetic_vi"
    display_name = "Synthetic visible-infrared (SYSU-MM01 layout)"

    def __init__(self, root: Optional[PathLike] = None, verbose: bool = True) -> None:
        super().__init__(root=default_vi_root("sysu") if root is None else root, verbose=verbose)


@DATASETS.register("synthetic_vi_regdb")
class SyntheticVIRegDB(RegDB):
    """The synthetic visible-infrared set in the RegDB layout (``root=None``: the default)."""

    name = "synthetic_vi_regdb"
    display_name = "Synthetic visible-infrared (RegDB layout)"

    def __init__(self, root: Optional[PathLike] = None, verbose: bool = True, split: int = 1,
                 direction: str = "v2t") -> None:
        super().__init__(root=default_vi_root("regdb") if root is None else root, verbose=verbose,
                         split=split, direction=direction)
