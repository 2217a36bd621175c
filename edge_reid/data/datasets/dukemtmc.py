"""DukeMTMC-reID (Ristani et al. 2016; Zheng et al. 2017): 1404 ids + distractors, 8 cameras.

Same layout and naming as Market-1501 (``bounding_box_train/``, ``bounding_box_test/``,
``query/``, files ``PPPP_cC_fFFFFFFF.jpg``); ``root`` is this folder or a parent holding
``DukeMTMC-reID``.
"""

from __future__ import annotations

from edge_reid.data import DATASETS
from edge_reid.data.datasets.market1501 import Market1501


@DATASETS.register("dukemtmc")
class DukeMTMCreID(Market1501):
    """Parse a DukeMTMC-reID tree (Market-1501 naming rules)."""

    name = "dukemtmc"
    display_name = "DukeMTMC-reID"
    dataset_dir = "DukeMTMC-reID"

    @classmethod
    def expected_layout(cls) -> str:
        a, b, c = cls.folders
        return f"expected {a}/, {c}/ and {b}/ with files named PPPP_cC_fFFFFFFF.jpg."
