"""The data a build needs: the evaluation split, INT8 calibration crops, and parity crops the
calibration did not see.

Parity of a quantised graph measured on its own calibration images flatters it (a one-image
calibration "passes" on that image), so without an evaluation split the build holds calibration
candidates out for parity, and says so plainly when it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError

#: parity crops held out of the calibration candidates when there is no evaluation split
HELD_OUT = 16


@dataclass
class EvalSet:
    """A query/gallery split, pre-processed."""

    query: np.ndarray
    gallery: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray

    @property
    def images(self) -> np.ndarray:
        return np.concatenate([self.query, self.gallery], axis=0)


@dataclass
class ParityImages:
    """The crops every artifact is compared on, and what they are."""

    images: np.ndarray
    source: str
    unseen_by_calibration: bool

    def to_dict(self) -> dict:
        return {"source": self.source, "count": int(len(self.images)),
                "unseen_by_calibration": self.unseen_by_calibration}


def load_eval_set(name: str, input_size: Tuple[int, int], limit: int) -> EvalSet:
    """Up to ``limit`` images of ``name``'s query+gallery (queries first, whole identities kept)."""
    from edge_reid.data import build_dataset
    from edge_reid.runtime.preprocess import preprocess_crops, read_bgr

    ds = build_dataset(name, verbose=False)
    n_query = max(1, limit // 4)
    query = ds.query[:: max(1, len(ds.query) // n_query)][:n_query]
    pids = {r.pid for r in query}
    gallery = [r for r in ds.gallery if r.pid in pids][: max(1, limit - len(query))]
    load = lambda recs: preprocess_crops([read_bgr(r.path) for r in recs], input_size)  # noqa: E731
    arr = lambda recs, key: np.array([getattr(r, key) for r in recs])  # noqa: E731
    return EvalSet(load(query), load(gallery), arr(query, "pid"), arr(gallery, "pid"),
                   arr(query, "camid"), arr(gallery, "camid"))


def load_calibration(cfg: Any, input_size: Tuple[int, int], extra: int = 0) -> Tuple[np.ndarray, str]:
    """Up to ``cfg.calib_images + extra`` calibration candidates and where they came from."""
    from edge_reid.deploy import int8

    limit = cfg.calib_images + extra
    if cfg.calib_dir:
        return int8.calibration_from_folder(cfg.calib_dir, input_size, limit), f"folder {cfg.calib_dir}"
    if cfg.calib_split:
        name, _, split = cfg.calib_split.partition(":")
        data = int8.calibration_from_split(name, input_size, split or "train", limit=limit)
        return data, f"{name}:{split or 'train'}"
    if cfg.calib_random:
        return int8.random_calibration(input_size, min(limit, 64 + extra)), "random (explicit --calib-random)"
    return int8.calibration_from_split("synthetic", input_size, "train", limit=limit), "synthetic:train"


def check_calib_images(count: int) -> int:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InvalidInputError(f"--calib-images must be at least 1; got {count}.")
    return count


def hold_out(candidates: np.ndarray, calib_images: int, source: str) -> Tuple[np.ndarray, ParityImages]:
    """(calibration crops, parity crops) from the candidates: the parity crops are ones the
    calibration does not see whenever there are at least two candidates (beyond ``calib_images``
    they are the extra ones; otherwise about one in eight is taken from calibration)."""
    n = len(candidates)
    if n < 2:
        return candidates, ParityImages(candidates, f"the {n} calibration crop(s) from {source}: no unseen crop "
                                        "exists, so INT8 parity could not be measured on unseen images", False)
    count = n - calib_images if n > calib_images else max(1, n // 8)
    picked = np.zeros(n, bool)
    picked[np.linspace(0, n - 1, num=count).round().astype(int)] = True
    return candidates[~picked], ParityImages(candidates[picked], f"{int(picked.sum())} crops from {source} held out "
                                             "of calibration", True)
