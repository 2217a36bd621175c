"""Training samples with the person mask, transformed exactly like the image (PedMix ``position: mask``).

The mask of ``<root>/<relative path>`` is ``<root>/masks/<relative path>.png`` (255 = person), the
layout both synthetic generators write (Market-1501 and SYSU-MM01 / RegDB layouts). The mask
goes through the geometric steps of the training transform (resize, flip, pad, crop) with the
same random draws as its image (those steps' draws do not depend on the pixels, so replaying the
torch RNG state gives the same flip and crop); colour jitter and random erasing touch the image only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torchvision import transforms as T

from edge_reid.data.loader import ImageDataset
from edge_reid.data.transforms import ResizeToTensor, ToUnitFloat
from edge_reid.errors import InvalidInputError

#: Transform steps applied to the mask as well (their random draws are independent of the content).
GEOMETRIC = (ResizeToTensor, T.RandomHorizontalFlip, T.Pad, T.RandomCrop, ToUnitFloat)


def mask_path(image_path: str, root: str) -> Path:
    """``<root>/masks/<image path relative to root>`` with a ``.png`` suffix."""
    try:
        rel = Path(image_path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        raise InvalidInputError(f"The image {image_path} lies outside the dataset root {root}, so its person "
                                f"mask cannot be found.") from None
    return (Path(root) / "masks" / rel).with_suffix(".png")


def read_mask(image_path: str, root: str, shape: Tuple[int, int]) -> np.ndarray:
    """The stored person mask of an image as uint8 H x W x 3 (0 / 255), resized to ``shape``."""
    path = mask_path(image_path, root)
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
    if mask is None:
        raise InvalidInputError(f"PedMix position 'mask' needs person masks, but there is no readable mask {path} "
                                f"for {image_path}; use position 'fixed' for data without masks.")
    if mask.shape != tuple(shape):
        mask = cv2.resize(mask, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST)
    return np.repeat(mask[..., None], 3, axis=2)


def paired_transform(transform: Callable, image: np.ndarray, mask: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor]:
    """(transformed image, mask [1, H, W] float in [0, 1]) with the same geometric draws."""
    steps = getattr(transform, "transforms", None)
    if steps is None:
        raise InvalidInputError("PedMix position 'mask' needs the standard training transform (a Compose of steps).")
    for step in steps:
        if isinstance(step, GEOMETRIC):
            state = torch.get_rng_state()
            image = step(image)
            after = torch.get_rng_state()
            torch.set_rng_state(state)
            mask = step(mask)
            torch.set_rng_state(after)
        else:
            image = step(image)
    return image, mask[:1].float()


class MaskedImageDataset(ImageDataset):
    """:class:`ImageDataset` whose samples carry a fifth column: the person mask [1, H, W]."""

    def __init__(self, records: Sequence[Any], transform: Callable, root: str,
                 pre_transform: Optional[Callable[[np.ndarray, str], np.ndarray]] = None) -> None:
        super().__init__(records, transform=None, pre_transform=pre_transform)
        self.paired, self.root = transform, str(root)
        first = mask_path(self.records[0].path, self.root)
        if not first.is_file():
            raise InvalidInputError(f"PedMix position 'mask' needs person masks, but the first training image has "
                                    f"none at {first}; use position 'fixed' for data without masks.")

    def __getitem__(self, index: int):
        image, pid, camid, candidate = super().__getitem__(index)
        mask = read_mask(self.records[candidate].path, self.root, image.shape[:2])
        image, mask = paired_transform(self.paired, image, mask)
        return image, pid, camid, candidate, mask
