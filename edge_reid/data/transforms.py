"""Image transforms: RGB uint8 H x W x 3 numpy -> float32 tensor 3 x H x W in [0, 1].

No mean/std normalisation happens here: the model's first layer
(``edge_reid.models.base.InputNormalizer``) does it, the one place it happens. Random
choices use the torch RNG, so seeding torch (the loader seeds each worker) makes them
reproducible.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torchvision import transforms as T

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import IMAGENET_MEAN

Transform = Callable[[np.ndarray], torch.Tensor]


def _check_size(input_size: Sequence[int]) -> Tuple[int, int]:
    try:
        height, width = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise InvalidInputError(f"input_size must be (height, width), got {input_size!r}.") from None
    if height < 1 or width < 1:
        raise InvalidInputError(f"input_size must be positive, got {input_size!r}.")
    return height, width


class ResizeToTensor:
    """Resize an RGB uint8 H x W x 3 array (bilinear, OpenCV) to a uint8 tensor 3 x H x W."""

    def __init__(self, input_size: Sequence[int]) -> None:
        self.height, self.width = _check_size(input_size)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            described = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise InvalidInputError(f"Transforms take an RGB uint8 H x W x 3 array, got a {described}.")
        if image.shape[:2] != (self.height, self.width):
            image = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


class ToUnitFloat:
    """uint8 tensor -> float32 tensor in [0, 1]."""

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(torch.float32).div_(255.0)


class RandomErasing:
    """Random erasing (Zhong et al. 2020) on a float tensor in [0, 1].

    With probability ``p`` a rectangle covering ``area`` (fraction of the image) with aspect
    ratio in ``ratio`` is filled with ``fill``: "mean" (the ImageNet mean colour),
    "random" (uniform values in [0, 1]) or "normal" (per-pixel 0.5 + 0.5 N(0, 1): standard normal
    noise after a mean = std = 0.5 normalisation, FusionReID's release; not clipped to [0, 1]).
    """

    def __init__(
        self,
        p: float = 0.5,
        area: Tuple[float, float] = (0.02, 0.4),
        ratio: Tuple[float, float] = (0.3, 3.3),
        fill: str = "mean",
        attempts: int = 10,
    ) -> None:
        if not 0.0 <= p <= 1.0:
            raise InvalidInputError(f"erasing_p must be in [0, 1], got {p}.")
        if not 0.0 < area[0] <= area[1] <= 1.0:
            raise InvalidInputError(f"erasing_area must satisfy 0 < low <= high <= 1, got {area}.")
        if fill not in ("mean", "random", "normal"):
            raise InvalidInputError(f"erasing_fill must be 'mean', 'random' or 'normal', got {fill!r}.")
        self.p, self.area, self.fill, self.attempts = p, tuple(area), fill, attempts
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.p <= 0 or torch.rand(1).item() >= self.p:
            return image
        _, height, width = image.shape
        for _ in range(self.attempts):
            target = height * width * _uniform(*self.area)
            aspect = math.exp(_uniform(*self.log_ratio))
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if 0 < h < height and 0 < w < width:
                top = int(torch.randint(0, height - h + 1, (1,)).item())
                left = int(torch.randint(0, width - w + 1, (1,)).item())
                image = image.clone()
                if self.fill == "mean":
                    image[:, top:top + h, left:left + w] = torch.tensor(IMAGENET_MEAN, dtype=image.dtype).view(3, 1, 1)
                elif self.fill == "normal":
                    image[:, top:top + h, left:left + w] = 0.5 + 0.5 * torch.randn(3, h, w, dtype=image.dtype)
                else:
                    image[:, top:top + h, left:left + w] = torch.rand(3, h, w, dtype=image.dtype)
                return image
        return image


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * torch.rand(1).item()


class ColorJitter:
    """Random brightness, contrast, saturation and hue on a uint8 tensor 3 x H x W.

    Factors are drawn uniformly from ``[1 - x, 1 + x]`` (hue: a shift in ``[-hue, hue]`` of a
    full turn), applied in that fixed order. Implemented with OpenCV on the uint8 image: the
    torchvision tensor version of the hue step is about ten times slower on a CPU.
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
            raise InvalidInputError(
                f"color_jitter values must be >= 0 (hue <= 0.5), got {(brightness, contrast, saturation, hue)}."
            )
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        image = tensor.permute(1, 2, 0).numpy().astype(np.float32)
        if self.brightness > 0:
            image *= _uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast > 0:
            mean = float(cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).mean())
            image = (image - mean) * _uniform(1 - self.contrast, 1 + self.contrast) + mean
        if self.saturation > 0:
            gray = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
            image = (image - gray[..., None]) * _uniform(1 - self.saturation, 1 + self.saturation) + gray[..., None]
        image = np.clip(image, 0, 255).round().astype(np.uint8)
        if self.hue > 0:
            shift = int(round(_uniform(-self.hue, self.hue) * 180))  # OpenCV hue spans 0..179
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
            image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()


class CameraStyle:
    """A random camera's lighting on a uint8 tensor 3 x H x W: white balance, contrast, brightness.

    Mirrors the synthetic cameras' pointwise model (``cameras.apply_lighting``): per-channel
    gains drawn from ``[1 - gains, 1 + gains]``, then ``(x - 0.5) * c + 0.5 + b`` with ``c`` from
    ``[1 - contrast, 1 + contrast]`` and ``b`` from ``[-brightness, brightness]`` (in [0, 1] units),
    applied with probability ``p``. Teaches the embedder that a colour cast is not identity.
    """

    def __init__(self, gains: float = 0.25, contrast: float = 0.2, brightness: float = 0.1, p: float = 1.0) -> None:
        values = (gains, contrast, brightness, p)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise InvalidInputError(f"camera_style values must be numbers, got {values!r}.")
        if not (0 <= gains < 1 and 0 <= contrast < 1 and 0 <= brightness <= 1 and 0 <= p <= 1):
            raise InvalidInputError(
                "camera_style needs 0 <= gains < 1, 0 <= contrast < 1, 0 <= brightness <= 1 and 0 <= p <= 1, "
                f"got gains={gains}, contrast={contrast}, brightness={brightness}, p={p}."
            )
        self.gains, self.contrast, self.brightness, self.p = float(gains), float(contrast), float(brightness), float(p)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.p <= 0 or torch.rand(1).item() >= self.p:
            return tensor
        gains = 1.0 + self.gains * (2.0 * torch.rand(3) - 1.0)
        contrast = _uniform(1 - self.contrast, 1 + self.contrast)
        brightness = _uniform(-self.brightness, self.brightness)
        return self.apply(tensor, gains, contrast, brightness)

    @staticmethod
    def apply(tensor: torch.Tensor, gains: torch.Tensor, contrast: float, brightness: float) -> torch.Tensor:
        """The lighting with these draws: ``clip((x * gains - 0.5) * contrast + 0.5 + brightness)``."""
        image = tensor.to(torch.float32) / 255.0 * torch.as_tensor(gains, dtype=torch.float32).view(3, 1, 1)
        image = (image - 0.5) * contrast + 0.5 + brightness
        return image.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)


def build_train_transform(
    input_size: Sequence[int],
    flip_p: float = 0.5,
    pad: int = 10,
    color_jitter: Optional[Tuple[float, float, float, float]] = (0.2, 0.15, 0.15, 0.1),
    erasing_p: float = 0.5,
    erasing_area: Tuple[float, float] = (0.02, 0.4),
    erasing_fill: str = "mean",
    camera_style: Optional[Dict[str, float]] = None,
) -> Transform:
    """Resize, horizontal flip, pad + random crop, colour jitter, camera style, random erasing.

    ``color_jitter`` is (brightness, contrast, saturation, hue) or None; ``pad`` 0 disables
    the pad-and-crop; ``erasing_fill`` is "mean", "random" or "normal"; ``camera_style`` is
    None or the keyword options of :class:`CameraStyle` (``{}`` for its defaults).
    """
    height, width = _check_size(input_size)
    if not 0.0 <= flip_p <= 1.0:
        raise InvalidInputError(f"flip_p must be in [0, 1], got {flip_p}.")
    if pad < 0:
        raise InvalidInputError(f"pad must be >= 0, got {pad}.")
    steps: List[Callable] = [ResizeToTensor((height, width))]
    if flip_p > 0:
        steps.append(T.RandomHorizontalFlip(flip_p))
    if pad > 0:
        steps += [T.Pad(pad, fill=0), T.RandomCrop((height, width))]
    if color_jitter is not None:
        if len(color_jitter) != 4:
            raise InvalidInputError(
                f"color_jitter must be (brightness, contrast, saturation, hue) or None, got {color_jitter!r}."
            )
        steps.append(ColorJitter(*(float(v) for v in color_jitter)))
    if camera_style is not None:
        steps.append(_camera_style(camera_style))
    steps.append(ToUnitFloat())
    if erasing_p > 0:
        steps.append(RandomErasing(erasing_p, erasing_area, fill=erasing_fill))
    return T.Compose(steps)


def _camera_style(options: Dict[str, float]) -> CameraStyle:
    allowed = {"gains", "contrast", "brightness", "p"}
    if not isinstance(options, dict) or set(options) - allowed:
        raise InvalidInputError(f"camera_style must be null or a mapping with keys among {sorted(allowed)}, got {options!r}.")
    return CameraStyle(**options)


def build_test_transform(input_size: Sequence[int]) -> Transform:
    """Resize only (deterministic): RGB uint8 array -> float32 tensor 3 x H x W in [0, 1]."""
    return T.Compose([ResizeToTensor(input_size), ToUnitFloat()])


def augment_options(augment: Union[dict, None]) -> dict:
    """The keyword options of :func:`build_train_transform` named in ``augment`` (checked).

    ``background`` (the semantic-aware background augmentation, a pre-transform the train
    loader builds from it) is accepted and left out of the result.
    """
    allowed = {"flip_p", "pad", "color_jitter", "erasing_p", "erasing_area", "erasing_fill", "camera_style", "background"}
    augment = dict(augment or {})
    unknown = sorted(set(augment) - allowed)
    if unknown:
        raise InvalidInputError(f"Unknown augmentation option(s) {unknown}; known: {sorted(allowed)}.")
    augment.pop("background", None)
    if augment.get("color_jitter") is not None:
        augment["color_jitter"] = tuple(augment["color_jitter"])
    if "erasing_area" in augment:
        augment["erasing_area"] = tuple(augment["erasing_area"])
    return augment
