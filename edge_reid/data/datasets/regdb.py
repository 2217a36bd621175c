"""RegDB (Nguyen et al., Sensors 2017): 412 ids x 10 visible + 10 thermal images, 10 splits.

Layout (``root`` is this folder or a parent holding ``RegDB``)::

    Visible/<id>/*.bmp   Thermal/<id>/*.bmp
    idx/train_visible_{1..10}.txt  idx/train_thermal_{1..10}.txt
    idx/test_visible_{1..10}.txt   idx/test_thermal_{1..10}.txt

Each list line is ``relative/path label`` (relative to the root). ``split`` (1-10) picks the
lists; ``direction`` ``v2t`` queries visible images against the thermal gallery, ``t2v`` the
reverse. The visible images are camera 0, the thermal ones camera 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from edge_reid.data import DATASETS
from edge_reid.data.datasets.base import INFRARED, VISIBLE, ImageRecord, PathLike, ReIDDataset, find_dataset_dir, require_root
from edge_reid.errors import InvalidInputError

LAYOUT = (
    "expected Visible/, Thermal/ and idx/{train,test}_{visible,thermal}_{1..10}.txt with lines "
    "'relative/path label'."
)
NUM_SPLITS = 10
DIRECTIONS = ("v2t", "t2v")


def read_regdb_list(list_file: Path, root: Path, modality: int) -> List[ImageRecord]:
    """Records of one idx list, line by line as released; a malformed line is an error naming it."""
    if not list_file.is_file():
        raise InvalidInputError(f"RegDB root {root} has no idx/{list_file.name}; {LAYOUT}")
    records = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise InvalidInputError(f"Line {number} of {list_file} is not 'relative/path label': {line.strip()!r}.")
        records.append(ImageRecord(str(root / parts[0]), int(parts[1]), modality, modality))
    if not records:
        raise InvalidInputError(f"{list_file} lists no images; {LAYOUT}")
    return records


@DATASETS.register("regdb")
class RegDB(ReIDDataset):
    """Parse one RegDB split in one direction; records carry their modality."""

    name = "regdb"
    display_name = "RegDB"
    layout = LAYOUT
    protocol = "regdb"

    def __init__(self, root: Optional[PathLike] = None, verbose: bool = True, split: int = 1,
                 direction: str = "v2t") -> None:
        if int(split) != split or not 1 <= int(split) <= NUM_SPLITS:
            raise InvalidInputError(f"RegDB splits are numbered 1 to {NUM_SPLITS}, got {split!r}.")
        if direction not in DIRECTIONS:
            raise InvalidInputError(f"RegDB direction must be v2t or t2v, got {direction!r}.")
        base = require_root(root, self.display_name, LAYOUT)
        base = find_dataset_dir(base, ["idx"], ["RegDB"])
        for folder in ("Visible", "Thermal", "idx"):
            if not (base / folder).is_dir():
                raise InvalidInputError(f"RegDB root {base} has no {folder}/ folder; {LAYOUT}")
        idx = base / "idx"
        lists = {(part, mod): read_regdb_list(idx / f"{part}_{name}_{int(split)}.txt", base, mod)
                 for part in ("train", "test") for name, mod in (("visible", VISIBLE), ("thermal", INFRARED))}
        train = lists[("train", VISIBLE)] + lists[("train", INFRARED)]
        query_mod, gallery_mod = (VISIBLE, INFRARED) if direction == "v2t" else (INFRARED, VISIBLE)
        self.split, self.direction, self.dataset_path = int(split), direction, base
        super().__init__(train, lists[("test", query_mod)], lists[("test", gallery_mod)], root=base, verbose=verbose)
