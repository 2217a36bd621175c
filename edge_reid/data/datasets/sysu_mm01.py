"""SYSU-MM01 (Wu et al., ICCV 2017): 491 ids seen by 4 visible and 2 infrared cameras.

Layout (``root`` is this folder or a parent holding ``SYSU-MM01``)::

    cam1/ ... cam6/<4-digit id>/<4-digit>.jpg
    exp/train_id.txt  exp/val_id.txt  exp/test_id.txt   (one comma-separated line of ids)

cam1, cam2 (indoor) and cam4, cam5 (outdoor) are visible; cam3 (indoor) and cam6 (outdoor) are
infrared. Training uses the train and val ids (395 on the real set), all cameras. The query is
every infrared image of the test ids (cam3, cam6); the gallery is the *pool* of their visible
images (cam1, cam2, cam4, cam5), from which the protocol
(:mod:`edge_reid.evaluation.vi_protocol`) draws each trial's gallery.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from edge_reid.data import DATASETS
from edge_reid.data.datasets.base import (INFRARED, VISIBLE, ImageRecord, PathLike, ReIDDataset, find_dataset_dir,
                                          list_images, require_root)
from edge_reid.errors import InvalidInputError

LAYOUT = (
    "expected cam1/ ... cam6/ with <4-digit id>/<image>.jpg inside and exp/train_id.txt, exp/val_id.txt, "
    "exp/test_id.txt (one comma-separated line of ids each)."
)
#: Cameras (1-based, as named on disk) whose images are infrared.
INFRARED_CAMERAS = (3, 6)
NUM_CAMERAS = 6


def read_id_file(path: Path) -> List[int]:
    """The ids of one ``exp/*_id.txt`` file (a comma-separated line); a bad entry is an error."""
    if not path.is_file():
        raise InvalidInputError(f"SYSU-MM01 root {path.parent.parent} has no exp/{path.name}; {LAYOUT}")
    text = path.read_text().strip().splitlines()
    ids = []
    for item in (text[0].split(",") if text else []):
        if not item.strip().isdigit():
            raise InvalidInputError(f"{path} holds '{item.strip()}', which is not an id; expected '1,2,4,...'.")
        ids.append(int(item))
    if not ids:
        raise InvalidInputError(f"{path} lists no ids; expected one comma-separated line such as '1,2,4'.")
    return ids


def modality_of(cam: int) -> int:
    """VISIBLE or INFRARED for a 1-based SYSU-MM01 camera number."""
    return INFRARED if cam in INFRARED_CAMERAS else VISIBLE


def collect(base: Path, ids: Sequence[int], cameras: Sequence[int]) -> List[ImageRecord]:
    """Records of ``ids`` in ``cameras`` (1-based), id by id, camera by camera, files sorted."""
    records = []
    for pid in sorted(set(ids)):
        for cam in cameras:
            folder = base / f"cam{cam}" / f"{pid:04d}"
            if folder.is_dir():
                records.extend(ImageRecord(str(p), pid, cam - 1, modality_of(cam)) for p in list_images(folder))
    return records


@DATASETS.register("sysu_mm01")
class SYSUMM01(ReIDDataset):
    """Parse a SYSU-MM01 tree; records carry their modality (cam3 and cam6 infrared)."""

    name = "sysu_mm01"
    display_name = "SYSU-MM01"
    layout = LAYOUT
    protocol = "sysu"

    def __init__(self, root: Optional[PathLike] = None, verbose: bool = True) -> None:
        base = require_root(root, self.display_name, LAYOUT)
        base = find_dataset_dir(base, ["exp"], ["SYSU-MM01"])
        for cam in range(1, NUM_CAMERAS + 1):
            if not (base / f"cam{cam}").is_dir():
                raise InvalidInputError(f"SYSU-MM01 root {base} has no cam{cam}/ folder; {LAYOUT}")
        exp = base / "exp"
        train_ids = read_id_file(exp / "train_id.txt") + read_id_file(exp / "val_id.txt")
        test_ids = read_id_file(exp / "test_id.txt")
        all_cams = range(1, NUM_CAMERAS + 1)
        train = collect(base, train_ids, all_cams)
        query = collect(base, test_ids, INFRARED_CAMERAS)
        gallery = collect(base, test_ids, [c for c in all_cams if c not in INFRARED_CAMERAS])
        self.dataset_path = base
        super().__init__(train, query, gallery, root=base, verbose=verbose)
