"""CUHK03, new protocol (Zhong et al., CVPR 2017): 767 training ids, 700 test ids.

Layout (``root`` is this folder or a parent holding ``cuhk03``)::

    images_labeled/   images_detected/
    cuhk03_new_protocol_config_labeled.mat   cuhk03_new_protocol_config_detected.mat

The split of ``variant`` ("labeled" or "detected") comes from the ``.mat`` file (fields
``filelist``, ``labels``, ``camId``, ``train_idx``, ``query_idx``, ``gallery_idx``; the
indices are 1-based) or, when there is no ``.mat``, from ``splits_new_<variant>.json``
holding the same fields as lists. Images are ``images_<variant>/<filelist entry>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from edge_reid.data import DATASETS
from edge_reid.data.datasets.base import ImageRecord, PathLike, ReIDDataset, find_dataset_dir, require_root
from edge_reid.errors import InvalidInputError

VARIANTS = ("labeled", "detected")
FIELDS = ("filelist", "labels", "train_idx", "query_idx", "gallery_idx")


def _layout(variant: str) -> str:
    return (
        f"expected images_{variant}/ and cuhk03_new_protocol_config_{variant}.mat "
        f"(or splits_new_{variant}.json) with fields filelist, labels, camId, train_idx, "
        f"query_idx and gallery_idx."
    )


def _strings(values: Any) -> List[str]:
    """File names from a MATLAB cell array (nested numpy object arrays) or a JSON list."""
    out = []
    for value in np.asarray(values, dtype=object).ravel():
        while isinstance(value, np.ndarray):
            value = value.ravel()[0]
        out.append(str(value))
    return out


def _ints(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).ravel().astype(np.int64)


def load_split(path: Path) -> Dict[str, Any]:
    """The split fields of a ``.mat`` or ``.json`` split file, as flat numpy arrays."""
    try:
        if path.suffix == ".mat":
            from scipy.io import loadmat

            raw: Mapping[str, Any] = loadmat(str(path))
        else:
            raw = json.loads(path.read_text())
    except (ValueError, OSError, NotImplementedError) as exc:
        raise InvalidInputError(f"Cannot read the CUHK03 split file {path} ({exc}).") from None
    if not isinstance(raw, Mapping):
        raise InvalidInputError(f"The CUHK03 split file {path} is not a mapping of split fields.")
    missing = [f for f in FIELDS if f not in raw]
    if missing:
        raise InvalidInputError(f"The CUHK03 split file {path} lacks the field(s) {missing}.")
    split: Dict[str, Any] = {"filelist": _strings(raw["filelist"])}
    for field in ("labels", "train_idx", "query_idx", "gallery_idx"):
        split[field] = _ints(raw[field])
    cams = _ints(raw["camId"]) if "camId" in raw else None
    if cams is not None and cams.size and cams.min() >= 1:
        cams = cams - 1  # released files number cameras from 1
    split["camId"] = cams
    return split


def _camid(name: str, cam_field: Optional[np.ndarray], index: int) -> int:
    """0-based camera from the (already 0-based) ``camId`` or the name's third field (``1_001_1_01.png``)."""
    if cam_field is not None:
        return int(cam_field[index])
    fields = Path(name).stem.split("_")
    if len(fields) < 3 or not fields[2].isdigit():
        raise InvalidInputError(f"CUHK03 file name {name!r} has no camera field and the split has no camId.")
    return int(fields[2]) - 1


@DATASETS.register("cuhk03")
class CUHK03(ReIDDataset):
    """Parse CUHK03 (new protocol) for one ``variant``: "labeled" or "detected"."""

    name = "cuhk03"
    display_name = "CUHK03"

    def __init__(
        self, root: Optional[PathLike] = None, verbose: bool = True, variant: str = "labeled"
    ) -> None:
        if variant not in VARIANTS:
            raise InvalidInputError(f"CUHK03 variant must be 'labeled' or 'detected', not {variant!r}.")
        self.variant = variant
        self.layout = _layout(variant)
        base = require_root(root, self.display_name, self.layout)
        base = find_dataset_dir(base, [f"images_{variant}"], ["cuhk03"])
        image_dir = base / f"images_{variant}"
        if not image_dir.is_dir():
            raise InvalidInputError(f"CUHK03 root {base} has no images_{variant}/ folder; {self.layout}")
        split_file = base / f"cuhk03_new_protocol_config_{variant}.mat"
        if not split_file.is_file():
            split_file = base / f"splits_new_{variant}.json"
        if not split_file.is_file():
            raise InvalidInputError(
                f"CUHK03 root {base} has no cuhk03_new_protocol_config_{variant}.mat "
                f"or splits_new_{variant}.json; {self.layout}"
            )
        split = load_split(split_file)
        subsets = [self._records(split, split_file, image_dir, f) for f in ("train_idx", "query_idx", "gallery_idx")]
        self.dataset_path = base
        super().__init__(*subsets, root=base, verbose=verbose)

    @staticmethod
    def _records(split: Dict[str, Any], source: Path, image_dir: Path, field: str) -> List[ImageRecord]:
        names, labels, cams = split["filelist"], split["labels"], split["camId"]
        n = len(names)
        if len(labels) != n or (cams is not None and len(cams) != n):
            raise InvalidInputError(f"The CUHK03 split file {source} has filelist, labels and camId of different lengths.")
        records = []
        for one_based in split[field]:
            i = int(one_based) - 1
            if not 0 <= i < n:
                raise InvalidInputError(
                    f"The CUHK03 split file {source} has {field} entry {one_based} outside 1..{n}."
                )
            records.append(ImageRecord(str(image_dir / names[i]), int(labels[i]), _camid(names[i], cams, i)))
        return records
