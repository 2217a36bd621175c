"""The dataset contract every parser returns: train / query / gallery lists of records.

A parser reads a folder layout into three lists of :class:`ImageRecord` and hands them to
:class:`ReIDDataset`, which relabels the training ids to 0..N-1 (classification targets),
checks that no split is empty and prints a summary table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from edge_reid.errors import InvalidInputError

PathLike = Union[str, "os.PathLike[str]"]

#: File suffixes treated as images when a parser lists a folder.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: ``ImageRecord.modality`` values (also the "modality" model input of two-stream models).
VISIBLE, INFRARED = 0, 1


class ImageRecord(NamedTuple):
    """One image: its path, person id, 0-based camera id and modality (0 visible, 1 infrared)."""

    path: str
    pid: int
    camid: int
    modality: int = 0


class ReIDDataset:
    """Train / query / gallery records of one dataset, with training ids relabelled.

    ``train`` pids are mapped to 0..N-1 in increasing order of the original id; ``query``
    and ``gallery`` keep the original ids so that the evaluation matches them across sets.
    ``layout`` is a sentence describing the expected folder layout, used in errors.
    """

    name: str = "dataset"
    display_name: str = "dataset"
    layout: str = ""

    def __init__(
        self,
        train: Sequence[ImageRecord],
        query: Sequence[ImageRecord],
        gallery: Sequence[ImageRecord],
        root: PathLike,
        verbose: bool = True,
        relabel: bool = True,
    ) -> None:
        self.root = str(root)
        for split, records in (("train", train), ("query", query), ("gallery", gallery)):
            if not records:
                raise InvalidInputError(
                    f"{self.display_name} root {self.root} has no {split} images; {self.layout}".rstrip()
                )
        self.train: List[ImageRecord] = relabel_pids(train) if relabel else list(train)
        self.query: List[ImageRecord] = list(query)
        self.gallery: List[ImageRecord] = list(gallery)
        if verbose:
            print(self.summary())

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({r.camid for r in self.train})

    def split_stats(self) -> Dict[str, Tuple[int, int, int]]:
        """(# ids, # images, # cameras) of each split."""
        return {name: _stats(records) for name, records in
                (("train", self.train), ("query", self.query), ("gallery", self.gallery))}

    def summary(self) -> str:
        """A small table of ids / images / cameras per split, as torchreid prints it."""
        lines = [
            f"=> Loaded {self.display_name} ({self.name}) from {self.root}",
            "  ----------------------------------------",
            "  subset   | # ids | # images | # cameras",
            "  ----------------------------------------",
        ]
        for split, (ids, images, cams) in self.split_stats().items():
            lines.append(f"  {split:<8} | {ids:5d} | {images:8d} | {cams:9d}")
        lines.append("  ----------------------------------------")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, root={self.root!r})"


def _stats(records: Iterable[ImageRecord]) -> Tuple[int, int, int]:
    records = list(records)
    return len({r.pid for r in records}), len(records), len({r.camid for r in records})


def relabel_pids(records: Sequence[ImageRecord]) -> List[ImageRecord]:
    """Map the pids of ``records`` to 0..N-1, in increasing order of the original id."""
    mapping = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [ImageRecord(*r)._replace(pid=mapping[r.pid]) for r in records]


def require_root(root: Optional[PathLike], display_name: str, layout: str) -> Path:
    """``root`` as an existing folder, or a one-sentence error saying what was expected."""
    if root is None:
        raise InvalidInputError(
            f"{display_name} needs a root folder (pass --data-root or root=...); {layout}"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise InvalidInputError(f"{display_name} root {path} does not exist or is not a folder; {layout}")
    return path


def find_dataset_dir(root: Path, markers: Sequence[str], subdirs: Sequence[str]) -> Path:
    """``root`` itself if it holds ``markers[0]``, else the first ``root/<subdir>`` that does.

    This lets users point at the dataset folder or at a parent that contains it.
    """
    for candidate in [root, *(root / s for s in subdirs)]:
        if (candidate / markers[0]).exists():
            return candidate
    return root


def list_images(folder: Path) -> List[Path]:
    """Image files directly inside ``folder``, sorted by name (deterministic order)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
