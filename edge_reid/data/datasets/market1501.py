"""Market-1501 (Zheng et al., ICCV 2015): 1501 ids, 6 cameras.

Layout (``root`` is this folder or a parent holding ``Market-1501-v15.09.15``)::

    bounding_box_train/  bounding_box_test/  query/

with files named ``PPPP_cCsS_FFFFFF_NN.jpg`` (person id, camera, sequence, frame, box).
Id -1 marks junk boxes and is dropped; id 0000 marks distractors and stays in the
gallery only.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

from edge_reid.data import DATASETS
from edge_reid.data.datasets.base import (
    ImageRecord,
    PathLike,
    ReIDDataset,
    find_dataset_dir,
    list_images,
    require_root,
)
from edge_reid.errors import InvalidInputError

_NAME = re.compile(r"^(-?\d+)_c(\d+)")


def parse_market_name(name: str) -> Optional[Tuple[int, int]]:
    """(pid, 0-based camid) from a ``PPPP_cCsS_...`` file name, or None if it does not match."""
    match = _NAME.match(name)
    if match is None:
        return None
    cam = int(match.group(2))
    if cam < 1:
        return None
    return int(match.group(1)), cam - 1


@DATASETS.register("market1501")
class Market1501(ReIDDataset):
    """Parse a Market-1501 style tree (also used by DukeMTMC-reID and the synthetic set)."""

    name = "market1501"
    display_name = "Market-1501"
    dataset_dir = "Market-1501-v15.09.15"
    folders = ("bounding_box_train", "query", "bounding_box_test")

    def __init__(self, root: Optional[PathLike] = None, verbose: bool = True) -> None:
        layout = self.expected_layout()
        self.layout = layout
        base = require_root(root, self.display_name, layout)
        base = find_dataset_dir(base, self.folders, [self.dataset_dir])
        for folder in self.folders:
            if not (base / folder).is_dir():
                raise InvalidInputError(f"{self.display_name} root {base} has no {folder}/ folder; {layout}")
        self.dataset_path = base
        train = self._parse(base / self.folders[0], keep_distractors=False)
        query = self._parse(base / self.folders[1], keep_distractors=False)
        gallery = self._parse(base / self.folders[2], keep_distractors=True)
        super().__init__(train, query, gallery, root=base, verbose=verbose)

    @classmethod
    def expected_layout(cls) -> str:
        a, b, c = cls.folders
        return f"expected {a}/, {c}/ and {b}/ with files named PPPP_cCsS_FFFFFF_NN.jpg."

    def _parse(self, folder: Path, keep_distractors: bool) -> List[ImageRecord]:
        """Records of one folder: junk (-1) dropped, distractors (0) kept only if asked."""
        records, unmatched = [], []
        for path in list_images(folder):
            parsed = parse_market_name(path.name)
            if parsed is None:
                unmatched.append(path.name)
                continue
            pid, camid = parsed
            if pid == -1 or (pid == 0 and not keep_distractors):
                continue
            records.append(ImageRecord(str(path), pid, camid))
        if unmatched:
            warnings.warn(
                f"Skipped {len(unmatched)} image(s) in {folder} not named PPPP_cCsS_FFFFFF_NN.jpg "
                f"(first: {unmatched[0]}).",
                stacklevel=3,
            )
        return records
