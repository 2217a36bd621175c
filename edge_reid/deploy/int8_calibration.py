"""INT8 calibration data: person crops from a folder, a list of files or a dataset split (random
pixels only on request), and the ONNX Runtime reader that feeds them to the calibrator in equal
batches together with any extra per-image inputs (``camera_ids``, ``modality``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from edge_reid.deploy.onnx_export import INPUT_NAME
from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.runtime.preprocess import list_images, preprocess_crops, read_bgr

log = logging.getLogger("edge_reid.deploy.int8")

DEFAULT_CALIB_IMAGES = 256


def _quantization_api():
    try:
        from onnxruntime import quantization
    except ImportError:
        raise MissingDependencyError(
            "INT8 quantization needs onnxruntime; install it with 'pip install onnxruntime'."
        ) from None
    return quantization


def calibration_from_folder(folder: Union[str, Path], input_size: Tuple[int, int],
                            limit: int = DEFAULT_CALIB_IMAGES) -> np.ndarray:
    """Read up to ``limit`` person crops (evenly spread over the sorted files) from ``folder``."""
    paths = list_images(folder)
    if not paths:
        raise InvalidInputError(f"Calibration folder {folder} contains no images (.jpg, .png, .bmp, .webp).")
    return calibration_from_paths(paths, input_size, limit)


def calibration_from_paths(paths: Sequence[Union[str, Path]], input_size: Tuple[int, int],
                           limit: int = DEFAULT_CALIB_IMAGES) -> np.ndarray:
    """Pre-process up to ``limit`` images chosen evenly from ``paths`` into an N x 3 x H x W batch."""
    if not paths:
        raise InvalidInputError("The calibration set is empty; give a folder or split with images.")
    idx = np.linspace(0, len(paths) - 1, num=min(limit, len(paths))).round().astype(int)
    chosen = [paths[i] for i in sorted(set(idx.tolist()))]
    return preprocess_crops([read_bgr(p) for p in chosen], input_size)


def calibration_from_split(dataset: str, input_size: Tuple[int, int], split: str = "train",
                           root: Optional[str] = None, limit: int = DEFAULT_CALIB_IMAGES) -> np.ndarray:
    """Calibration crops from a dataset split (``train``, ``query`` or ``gallery``) via ``build_dataset``."""
    from edge_reid.data import build_dataset

    ds = build_dataset(dataset, root=root, verbose=False)
    if split not in ("train", "query", "gallery"):
        raise InvalidInputError(f"Unknown split '{split}'; choose train, query or gallery.")
    records = getattr(ds, split)
    return calibration_from_paths([r.path for r in records], input_size, limit)


def random_calibration(input_size: Tuple[int, int], count: int = 64, seed: int = 0) -> np.ndarray:
    """Random pixels: only for smoke tests and only on explicit request (ranges will be wrong)."""
    log.warning("Calibrating INT8 on random data: accuracy of the INT8 graphs is not representative.")
    rng = np.random.default_rng(seed)
    return rng.random((count, 3, int(input_size[0]), int(input_size[1])), dtype=np.float32)


class ArrayCalibrationReader:
    """ONNX Runtime ``CalibrationDataReader`` over an N x 3 x H x W float32 array, in equal batches.

    Every batch has the same size (the largest divisor of N not above ``batch_size``): ONNX
    Runtime's histogram calibrators (percentile, entropy) cannot stack batches of different sizes.
    """

    def __init__(self, images: np.ndarray, batch_size: int = 16, input_name: str = INPUT_NAME,
                 extras: Optional[Dict[str, np.ndarray]] = None) -> None:
        if images.ndim != 4 or images.shape[0] == 0:
            raise InvalidInputError("The calibration set is empty; give a folder or split with images.")
        self.images = np.ascontiguousarray(images, dtype=np.float32)
        self.extras = dict(extras or {})  # per-image int64 inputs (camera_ids, modality), sliced alike
        n = len(self.images)
        self.batch_size = max(d for d in range(1, max(1, int(batch_size)) + 1) if n % d == 0)
        self.input_name = input_name
        self._pos = 0

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        if self._pos >= len(self.images):
            return None
        stop = self._pos + self.batch_size
        feeds = {self.input_name: self.images[self._pos:stop], **{k: v[self._pos:stop] for k, v in self.extras.items()}}
        self._pos = stop
        return feeds

    def rewind(self) -> None:
        self._pos = 0

    def __len__(self) -> int:
        return (len(self.images) + self.batch_size - 1) // self.batch_size


def _as_ort_reader(reader: ArrayCalibrationReader):
    """Wrap in ORT's abstract base class (it checks isinstance)."""
    q = _quantization_api()

    class _Reader(q.CalibrationDataReader):
        def get_next(self):  # type: ignore[override]
            return reader.get_next()

        def __len__(self) -> int:
            return len(reader)

    reader.rewind()
    return _Reader()
