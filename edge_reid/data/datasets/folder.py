"""A generic folder layout for your own data.

Layout::

    root/
      train/<pid>/<images>
      query/<pid>/<images>
      gallery/<pid>/<images>

``<pid>`` is a folder per person, normally an integer (``0001``); if any folder name is not
an integer, the names are mapped to integers in sorted order (consistently across
query and gallery). The camera of each image comes from a ``c<N>`` token in its file name
(``0001_c2_000123.jpg``, ``frame_c3.png``) or from a ``cam<N>`` sub-folder
(``train/0001/cam2/x.jpg``). Camera numbers are mapped to 0-based ids in sorted order,
the same mapping for all three splits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from edge_reid.data import DATASETS
from edge_reid.data.datasets.base import IMAGE_SUFFIXES, ImageRecord, PathLike, ReIDDataset, require_root
from edge_reid.errors import InvalidInputError

LAYOUT = (
    "expected train/, query/ and gallery/ each holding one folder per person id with images whose "
    "file name has a c<N> camera token (e.g. 0001_c2_0001.jpg) or that sit in a cam<N> sub-folder."
)
SPLITS = ("train", "query", "gallery")
_NAME_CAM = re.compile(r"(?<![A-Za-z0-9])c(\d+)")
_DIR_CAM = re.compile(r"^cam(\d+)$", re.IGNORECASE)


def camera_number(path: Path, pid_dir: Path) -> Optional[int]:
    """Camera number from a ``cam<N>`` folder between ``pid_dir`` and the image, else a ``c<N>`` token."""
    for part in path.relative_to(pid_dir).parts[:-1]:
        match = _DIR_CAM.match(part)
        if match:
            return int(match.group(1))
    match = _NAME_CAM.search(path.stem)
    return int(match.group(1)) if match else None


@DATASETS.register("folder")
class FolderDataset(ReIDDataset):
    """Parse ``root/{train,query,gallery}/<pid>/...`` (see the module docstring)."""

    name = "folder"
    display_name = "Folder dataset"
    layout = LAYOUT

    def __init__(self, root: Optional[PathLike] = None, verbose: bool = True) -> None:
        base = require_root(root, self.display_name, LAYOUT)
        raw: Dict[str, List[Tuple[str, str, int]]] = {}
        for split in SPLITS:
            if not (base / split).is_dir():
                raise InvalidInputError(f"Folder dataset root {base} has no {split}/ folder; {LAYOUT}")
            raw[split] = self._scan(base / split)
        cams = sorted({cam for items in raw.values() for _, _, cam in items})
        cam_ids = {cam: i for i, cam in enumerate(cams)}
        train_pids = _pid_map({pid for _, pid, _ in raw["train"]})
        test_pids = _pid_map({pid for s in ("query", "gallery") for _, pid, _ in raw[s]})
        records = {
            split: [ImageRecord(path, (train_pids if split == "train" else test_pids)[pid], cam_ids[cam])
                    for path, pid, cam in raw[split]]
            for split in SPLITS
        }
        self.dataset_path = base
        super().__init__(records["train"], records["query"], records["gallery"], root=base, verbose=verbose)

    @staticmethod
    def _scan(split_dir: Path) -> List[Tuple[str, str, int]]:
        """(path, pid folder name, camera number) of every image under ``split_dir``."""
        items = []
        for pid_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for path in sorted(pid_dir.rglob("*")):
                if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                cam = camera_number(path, pid_dir)
                if cam is None:
                    raise InvalidInputError(f"Image {path} has no c<N> token in its name and no cam<N> folder; {LAYOUT}")
                items.append((str(path), pid_dir.name, cam))
        return items


def _pid_map(names: set) -> Dict[str, int]:
    """Integer folder names keep their value; otherwise all names are numbered in sorted order."""
    if all(_is_int(n) for n in names):
        return {n: int(n) for n in names}
    return {n: i for i, n in enumerate(sorted(names))}


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()
