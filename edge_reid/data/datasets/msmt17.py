"""MSMT17 (Wei et al., CVPR 2018): 4101 ids, 15 cameras.

Layout (``root`` is this folder or a parent holding ``MSMT17_V1``, ``MSMT17_V2`` or
``MSMT17``)::

    train/  test/  list_train.txt  list_val.txt  list_query.txt  list_gallery.txt

Each list line is ``relative/path pid``; train and val paths are relative to ``train/``,
query and gallery paths to ``test/`` (V2 names ``mask_train_v2/``, ``mask_test_v2/`` are
accepted too). The camera is the third ``_`` field of the file name
(``0000_000_01_0303morning_0015_0.jpg`` -> camera 01). By default the validation list is
merged into training, as is common practice.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from edge_reid.data import DATASETS
from edge_reid.data.datasets.base import ImageRecord, PathLike, ReIDDataset, find_dataset_dir, require_root
from edge_reid.errors import InvalidInputError

LAYOUT = (
    "expected train/, test/ and list_train.txt, list_val.txt, list_query.txt, list_gallery.txt "
    "with lines 'relative/path pid' and files named PPPP_SSS_CC_*.jpg."
)


def msmt_camid(file_name: str) -> Optional[int]:
    """0-based camera id from an MSMT17 file name's third ``_`` field, or None."""
    fields = Path(file_name).name.split("_")
    if len(fields) < 3 or not fields[2].isdigit() or int(fields[2]) < 1:
        return None
    return int(fields[2]) - 1


def read_list(list_file: Path, image_dir: Path) -> List[ImageRecord]:
    """Records of one ``list_*.txt`` file; a malformed line is an error naming it."""
    records = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        camid = msmt_camid(parts[0]) if parts else None
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or camid is None:
            raise InvalidInputError(
                f"Line {number} of {list_file} is not 'relative/path pid' with a file named "
                f"PPPP_SSS_CC_*.jpg: {line.strip()!r}."
            )
        records.append(ImageRecord(str(image_dir / parts[0]), int(parts[1]), camid))
    return records


@DATASETS.register("msmt17")
class MSMT17(ReIDDataset):
    """Parse an MSMT17 tree from its list files."""

    name = "msmt17"
    display_name = "MSMT17"
    layout = LAYOUT

    def __init__(
        self, root: Optional[PathLike] = None, verbose: bool = True, merge_val: bool = True
    ) -> None:
        base = require_root(root, self.display_name, LAYOUT)
        base = find_dataset_dir(base, ["list_train.txt"], ["MSMT17_V1", "MSMT17_V2", "MSMT17"])
        train_dir = _first_dir(base, ["train", "mask_train_v2"])
        test_dir = _first_dir(base, ["test", "mask_test_v2"])
        lists = {}
        for split in ("train", "val", "query", "gallery"):
            path = base / f"list_{split}.txt"
            if not path.is_file():
                raise InvalidInputError(f"MSMT17 root {base} has no list_{split}.txt; {LAYOUT}")
            lists[split] = path
        train = read_list(lists["train"], train_dir)
        if merge_val:
            train += read_list(lists["val"], train_dir)
        query = read_list(lists["query"], test_dir)
        gallery = read_list(lists["gallery"], test_dir)
        self.dataset_path = base
        super().__init__(train, query, gallery, root=base, verbose=verbose)


def _first_dir(base: Path, names: List[str]) -> Path:
    for name in names:
        if (base / name).is_dir():
            return base / name
    raise InvalidInputError(f"MSMT17 root {base} has no {names[0]}/ folder; {LAYOUT}")
