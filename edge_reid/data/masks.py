"""Person-mask providers for semantic-aware background augmentation.

Every provider is called as ``provider(image_rgb, path) -> float32 H x W mask in [0, 1]``
(1 = person, 0 = background) for an RGB uint8 H x W x 3 image and its file path (``path`` may be
``None`` for providers that do not need it).

Options, from no weights at all to any segmenter you have:

* :class:`DatasetMaskProvider` (no weights): reads masks stored beside a dataset. The synthetic
  dataset writes them as ``<root>/masks/<split folder>/<image stem>.png``, e.g. the mask of
  ``<root>/bounding_box_train/0001_c1s1_000001_00.jpg`` is
  ``<root>/masks/bounding_box_train/0001_c1s1_000001_00.png``. Any dataset whose masks were
  produced offline (by any tool) in that layout works the same way.
* :class:`GrabCutMaskProvider` (no weights): OpenCV's GrabCut initialised with a centred person
  rectangle. Crude but free; good enough on ReID crops where the person fills the middle.
* :class:`OnnxSegmenterProvider` (weights you bring): runs any semantic-segmentation ONNX model
  (N x 3 x H x W float input, N x C x h x w class logits or N x h x w class indices as output)
  with onnxruntime, e.g. a torchvision DeepLabV3 / LR-ASPP exported with ``torch.onnx.export``
  (Pascal VOC person class 15) or a human-parsing model; pick the class with ``person_class``.
  The paper used YOLOv8-Seg masks; such masks can also be precomputed into the dataset layout
  above and read with :class:`DatasetMaskProvider`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple

import cv2
import numpy as np

from edge_reid.errors import EdgeReidError, InvalidInputError, MissingDependencyError
from edge_reid.registry import Registry

#: Provider name -> factory(**options); configs name a provider as ``"grabcut"`` or ``{name: ..., ...}``.
MASK_PROVIDERS: Registry = Registry("mask provider")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise InvalidInputError(f"Mask providers expect an RGB uint8 H x W x 3 image, got {desc}.")


def fit_mask(mask: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Mask as float32 in [0, 1] resized (bilinear) to ``shape`` (H, W) when it differs."""
    m = np.asarray(mask, dtype=np.float32)
    if m.ndim == 3:
        m = m[..., 0]
    if m.shape != tuple(shape):
        m = cv2.resize(m, (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_LINEAR)
    return np.clip(m, 0.0, 1.0).astype(np.float32)


class MaskProvider:
    """Interface: ``provider(image_rgb, path) -> float32 H x W mask in [0, 1]`` (1 = person)."""

    def __call__(self, image_rgb: np.ndarray, path: Optional[str] = None) -> np.ndarray:
        raise NotImplementedError


def dataset_mask_path(image_path: str, root: Optional[str] = None) -> Path:
    """``<root>/masks/<split folder>/<stem>.png`` for ``<root>/<split folder>/<name>``."""
    p = Path(image_path)
    base = Path(root) if root is not None else p.parent.parent
    return base / "masks" / p.parent.name / (p.stem + ".png")


class DatasetMaskProvider(MaskProvider):
    """Reads masks stored beside the dataset (see the module docstring for the layout).

    ``root`` overrides the dataset root (default: the parent of the image's split folder).
    ``fallback`` is used for images without a stored mask; without one a missing mask is an error.
    """

    def __init__(self, root: Optional[str] = None, fallback: Optional[MaskProvider] = None) -> None:
        self.root = None if root is None else str(root)
        self.fallback = fallback

    def __call__(self, image_rgb: np.ndarray, path: Optional[str] = None) -> np.ndarray:
        _check_image(image_rgb)
        if path is None:
            raise InvalidInputError("DatasetMaskProvider needs the image 'path' to find its stored mask.")
        mask_path = dataset_mask_path(path, self.root)
        raw = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) if mask_path.is_file() else None
        if raw is None:
            if self.fallback is not None:
                return self.fallback(image_rgb, path)
            raise InvalidInputError(f"No readable person mask for '{path}' at '{mask_path}'.")
        return fit_mask(raw.astype(np.float32) / 255.0, image_rgb.shape[:2])


class GrabCutMaskProvider(MaskProvider):
    """cv2.grabCut started from a centred rectangle (margins as fractions of width and height).

    No weights needed. When GrabCut cannot run (e.g. a flat image) the rectangle itself is the mask.
    """

    def __init__(self, margin_x: float = 0.15, margin_y: float = 0.04, iterations: int = 3) -> None:
        if not (0.0 <= margin_x < 0.5 and 0.0 <= margin_y < 0.5):
            raise EdgeReidError(f"GrabCut margins 'margin_x'/'margin_y' must lie in [0, 0.5), got {margin_x}, {margin_y}.")
        if int(iterations) < 1:
            raise EdgeReidError(f"GrabCut option 'iterations' must be >= 1, got {iterations}.")
        self.margin_x, self.margin_y, self.iterations = float(margin_x), float(margin_y), int(iterations)

    def rect(self, h: int, w: int) -> Tuple[int, int, int, int]:
        """The initial person rectangle (x, y, width, height)."""
        x0, y0 = int(round(w * self.margin_x)), int(round(h * self.margin_y))
        return x0, y0, max(1, w - 2 * x0), max(1, h - 2 * y0)

    def __call__(self, image_rgb: np.ndarray, path: Optional[str] = None) -> np.ndarray:
        _check_image(image_rgb)
        h, w = image_rgb.shape[:2]
        x, y, rw, rh = self.rect(h, w)
        rect_mask = np.zeros((h, w), np.float32)
        rect_mask[y : y + rh, x : x + rw] = 1.0
        if h < 8 or w < 8:
            return rect_mask
        gc = np.zeros((h, w), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        bgr = np.ascontiguousarray(image_rgb[..., ::-1])
        try:
            cv2.grabCut(bgr, gc, (x, y, rw, rh), bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT)
        except cv2.error:
            return rect_mask
        fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.float32)
        return fg if fg.any() else rect_mask


class OnnxSegmenterProvider(MaskProvider):
    """Any semantic-segmentation ONNX model run with onnxruntime (imported lazily).

    ``person_class``: the output class that means person. ``input_size`` (H, W): the size the
    model expects (default: the image's own size, for models with dynamic H/W). The image is
    scaled to [0, 1] and then normalised with ``mean``/``std`` (use mean 0, std 1 for models
    that normalise inside). ``soft=True`` returns the person softmax probability instead of
    the 0/1 arg-max mask.
    """

    def __init__(
        self,
        onnx_path: str,
        person_class: int = 15,
        input_size: Optional[Sequence[int]] = None,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        soft: bool = False,
        providers: Optional[Sequence[str]] = None,
    ) -> None:
        if not os.path.isfile(onnx_path):
            raise InvalidInputError(f"The segmentation model '{onnx_path}' does not exist.")
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("OnnxSegmenterProvider needs onnxruntime: pip install onnxruntime.") from None
        self.onnx_path = str(onnx_path)
        self.person_class = int(person_class)
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        if np.any(self.std <= 0):
            raise EdgeReidError(f"OnnxSegmenterProvider option 'std' must be positive, got {tuple(std)}.")
        self.soft = bool(soft)
        self.session: Any = ort.InferenceSession(self.onnx_path, providers=list(providers or ["CPUExecutionProvider"]))
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, image_rgb: np.ndarray, path: Optional[str] = None) -> np.ndarray:
        _check_image(image_rgb)
        h, w = image_rgb.shape[:2]
        img = image_rgb
        if self.input_size is not None and self.input_size != (h, w):
            img = cv2.resize(img, (self.input_size[1], self.input_size[0]), interpolation=cv2.INTER_LINEAR)
        x = img.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        x = ((x - self.mean) / self.std).astype(np.float32)
        out = np.asarray(self.session.run(None, {self.input_name: x})[0])
        if out.ndim == 4:
            if not 0 <= self.person_class < out.shape[1]:
                raise EdgeReidError(
                    f"OnnxSegmenterProvider option 'person_class' is {self.person_class}, "
                    f"but the model outputs {out.shape[1]} classes."
                )
            logits = out[0].astype(np.float32)
            if self.soft:
                e = np.exp(logits - logits.max(axis=0, keepdims=True))
                mask = e[self.person_class] / e.sum(axis=0)
            else:
                mask = (logits.argmax(axis=0) == self.person_class).astype(np.float32)
        elif out.ndim == 3:
            mask = (out[0] == self.person_class).astype(np.float32)
        else:
            raise EdgeReidError(
                f"OnnxSegmenterProvider expects N x C x h x w logits or N x h x w labels, got shape {out.shape}."
            )
        return fit_mask(mask, (h, w))


@MASK_PROVIDERS.register("dataset")
def _dataset_provider(root: Optional[str] = None, fallback: Any = None) -> DatasetMaskProvider:
    """Masks stored beside the dataset; ``fallback`` (a provider spec) for images without one."""
    return DatasetMaskProvider(root, build_mask_provider(fallback) if fallback is not None else None)


MASK_PROVIDERS.register("grabcut")(GrabCutMaskProvider)
MASK_PROVIDERS.register("onnx")(OnnxSegmenterProvider)


def build_mask_provider(spec: Any) -> MaskProvider:
    """A provider from a config value: a registered name, or ``{"name": NAME, **options}``."""
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, dict) and isinstance(spec.get("name"), str):
        name, options = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    else:
        raise InvalidInputError(
            f"A mask provider must be a name ({', '.join(MASK_PROVIDERS.names())}) or a mapping with 'name', got {spec!r}."
        )
    factory = MASK_PROVIDERS.get(name)
    try:
        return factory(**options)
    except TypeError as exc:
        raise InvalidInputError(f"Mask provider '{name}' got unknown or missing options ({exc}).") from None
