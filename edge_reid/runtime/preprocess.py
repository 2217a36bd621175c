"""Pre-processing shared by every backend and by INT8 calibration (numpy + OpenCV only).

BGR uint8 H x W x 3 crops -> resized to the model's input size -> RGB -> float32 in [0, 1],
stacked as N x 3 x H x W. No mean/std here: the model normalises its input itself (its first
layer), the one place that happens in the toolkit.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np

from edge_reid.errors import InvalidInputError

Crops = Union[Sequence[np.ndarray], np.ndarray]

#: Image file extensions read from calibration / gallery folders.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
#: crops with a side below this many pixels carry almost no appearance: embedded, with a warning
MIN_CROP_SIDE = 4

log = logging.getLogger(__name__)
_tiny_seen = [0]  # tiny crops embedded by this process (warned at 1, 10, 100, ... to stay readable)


def _warn_tiny(shapes: List[Tuple[int, int]], input_size: Tuple[int, int]) -> None:
    before = _tiny_seen[0]
    _tiny_seen[0] += len(shapes)
    if before == 0 or len(str(_tiny_seen[0])) > len(str(before)):
        h, w = min(shapes)
        log.warning("%d crop(s) smaller than %dx%d pixels (the smallest %dx%d) were embedded, upscaled to %dx%d: they "
                    "show almost nothing of a person, so their matches are unreliable (%d so far in this run).",
                    len(shapes), MIN_CROP_SIDE, MIN_CROP_SIDE, h, w, input_size[0], input_size[1], _tiny_seen[0])


def preprocess_crops(crops: Sequence[np.ndarray], input_size: Tuple[int, int]) -> np.ndarray:
    """BGR uint8 crops (any sizes) -> float32 N x 3 x H x W RGB in [0, 1] at ``input_size`` (H, W)."""
    import cv2

    height, width = int(input_size[0]), int(input_size[1])
    batch = np.empty((len(crops), 3, height, width), dtype=np.float32)
    tiny: List[Tuple[int, int]] = []
    for i, crop in enumerate(crops):
        crop = np.asarray(crop)
        if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] == 0 or crop.shape[1] == 0:
            raise InvalidInputError(f"Crop {i} has shape {crop.shape}; expected a non-empty H x W x 3 BGR image.")
        if crop.dtype != np.uint8:
            raise InvalidInputError(f"Crop {i} has dtype {crop.dtype}; expected uint8 BGR pixels.")
        if min(crop.shape[:2]) < MIN_CROP_SIDE:
            tiny.append((int(crop.shape[0]), int(crop.shape[1])))
        if crop.shape[:2] != (height, width):
            crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)
        batch[i] = crop[:, :, ::-1].transpose(2, 0, 1)
    batch *= 1.0 / 255.0
    if tiny:
        _warn_tiny(tiny, (height, width))
    return batch


def to_batch(crops: Crops, input_size: Tuple[int, int]) -> np.ndarray:
    """Accept a list of BGR uint8 crops or a float N x 3 x H x W array; return float32 NCHW."""
    if isinstance(crops, np.ndarray) and crops.ndim == 4 and crops.dtype != np.uint8:
        if crops.shape[1] != 3 or tuple(crops.shape[2:]) != tuple(input_size):
            raise InvalidInputError(
                f"A float batch must be N x 3 x {input_size[0]} x {input_size[1]}; got {tuple(crops.shape)}."
            )
        return np.ascontiguousarray(crops, dtype=np.float32)
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        crops = [crops]
    return preprocess_crops(list(crops), input_size)


def list_images(folder: Union[str, Path]) -> List[Path]:
    """Image files under ``folder`` (recursively), sorted for determinism."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"Image folder {root} does not exist.")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def read_bgr(path: Union[str, Path]) -> np.ndarray:
    """Read one image as BGR uint8; an unreadable file is a clear error."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidInputError(f"Image {path} cannot be read (missing, corrupt or not an image).")
    return image


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32 (a no-op on already normalised embeddings)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)
