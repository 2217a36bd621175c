"""Semantic-aware background augmentation (VisNet paper, section II-G).

Only the background changes: ``x' = m * x + (1 - m) * T(x)`` with ``m`` the person mask from a
:mod:`edge_reid.data.masks` provider, so identity cues on the person stay intact while the
model learns to ignore the scene. Applied to RGB uint8 H x W x 3 images BEFORE the standard
transforms (resize, crop, flip, erasing).

Six families, each with its own probability ``p`` and strength ``strength`` in [0, 1]; every
family that fires (in the fixed order below) transforms the output of the previous one:

* ``hsv``: hue rotation, saturation scaling and brightness modulation.
* ``texture``: Canny edge enhancement or an emboss filter.
* ``noise``: salt-and-pepper or additive Gaussian noise.
* ``blur``: motion blur (random angle) or radial zoom blur.
* ``pattern``: grid lines, concentric circles or diagonal stripes in random colours.
* ``gradient``: linear, radial or angular fill between two random colours.

Mask sources (see :mod:`edge_reid.data.masks`): masks stored with the dataset (the synthetic
dataset writes them) or GrabCut, both without weights, or any segmentation ONNX model.

Training configs switch it on with ``data.augment.background`` (see :func:`build_background_augment`):
``{provider: dataset | grabcut | onnx | {name: ..., options}, families: {hsv: {p: .., strength: ..}, ...}}``.

Randomness comes only from a ``numpy.random.Generator``: the one passed to the call, else the
instance's own (seeded by ``seed``), so a run is reproducible. In DataLoader workers pass a
per-worker generator (or build one augmenter per worker with a distinct seed).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Mapping, Optional

import cv2
import numpy as np

from edge_reid.data.masks import MaskProvider, build_mask_provider, fit_mask
from edge_reid.errors import EdgeReidError, InvalidInputError

Transform = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]


def _random_color(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def hsv_shift(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate hue by up to +-180*s degrees, scale saturation and brightness by up to +-(0.9s, 0.6s)."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    dh = rng.uniform(-1.0, 1.0) * 90.0 * s  # OpenCV hue is 0..179 for 0..358 degrees
    sat = 1.0 + rng.uniform(-1.0, 1.0) * 0.9 * s
    val = 1.0 + rng.uniform(-1.0, 1.0) * 0.6 * s
    hsv[..., 0] = np.mod(hsv[..., 0] + dh, 180.0)
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * val, 0, 255)
    return cv2.cvtColor(hsv.round().astype(np.uint8), cv2.COLOR_HSV2RGB)


def texture(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Canny edges painted over the image, or an emboss filter blended in with weight s."""
    f = img.astype(np.float32)
    if rng.random() < 0.5:
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        lo = 40.0 + 80.0 * (1.0 - s) * rng.random()
        edges = cv2.Canny(gray, lo, 2.5 * lo).astype(np.float32)[..., None] / 255.0
        color = _random_color(rng)
        out = f * (1.0 - s * edges) + color * (s * edges)
    else:
        kernel = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
        emb = cv2.filter2D(f, -1, kernel, borderType=cv2.BORDER_REFLECT)
        out = (1.0 - s) * f + s * emb
    return np.clip(out, 0, 255).round().astype(np.uint8)


def noise(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper on up to 20% of pixels or Gaussian noise with sigma up to 50 (times s)."""
    h, w = img.shape[:2]
    if rng.random() < 0.5:
        out = img.copy()
        u = rng.random((h, w))
        amount = 0.2 * s
        out[u < amount / 2] = 0
        out[(u >= amount / 2) & (u < amount)] = 255
        return out
    sigma = 50.0 * s
    return np.clip(img.astype(np.float32) + rng.normal(0.0, sigma, img.shape), 0, 255).round().astype(np.uint8)


def blur(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Motion blur along a random angle (length up to 3 + 20s) or a radial zoom blur around a point."""
    h, w = img.shape[:2]
    f = img.astype(np.float32)
    if rng.random() < 0.5:
        length = 3 + int(round(20 * s))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0
        rot = cv2.getRotationMatrix2D(((length - 1) / 2.0, (length - 1) / 2.0), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        kernel /= max(float(kernel.sum()), 1e-6)
        out = cv2.filter2D(f, -1, kernel, borderType=cv2.BORDER_REFLECT)
    else:
        cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
        steps = 8
        acc = np.zeros_like(f)
        for i in range(steps):
            scale = 1.0 + 0.15 * s * i / (steps - 1)
            m = cv2.getRotationMatrix2D((cx, cy), 0.0, scale)
            acc += cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        out = acc / steps
    return np.clip(out, 0, 255).round().astype(np.uint8)


def pattern(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Grid lines, concentric circles or diagonal stripes in a random colour, opacity 0.3 + 0.7s."""
    h, w = img.shape[:2]
    layer = np.zeros((h, w), np.uint8)
    kind = int(rng.integers(0, 3))
    step = int(rng.integers(6, 17))
    thick = int(rng.integers(1, 4))
    if kind == 0:
        for x in range(int(rng.integers(0, step)), w, step):
            cv2.line(layer, (x, 0), (x, h - 1), 255, thick)
        for y in range(int(rng.integers(0, step)), h, step):
            cv2.line(layer, (0, y), (w - 1, y), 255, thick)
    elif kind == 1:
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        for r in range(step, int(math.hypot(h, w)) + step, step):
            cv2.circle(layer, (cx, cy), r, 255, thick)
    else:
        for off in range(-h, w + h, step):
            cv2.line(layer, (off, 0), (off + h, h - 1), 255, thick)
    alpha = (0.3 + 0.7 * s) * (layer.astype(np.float32)[..., None] / 255.0)
    out = img.astype(np.float32) * (1.0 - alpha) + _random_color(rng) * alpha
    return np.clip(out, 0, 255).round().astype(np.uint8)


def gradient(img: np.ndarray, s: float, rng: np.random.Generator) -> np.ndarray:
    """Linear, radial or angular gradient between two random colours, blended in with weight s."""
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    xx, yy = xx / max(w - 1, 1), yy / max(h - 1, 1)
    kind = int(rng.integers(0, 3))
    if kind == 0:
        theta = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(theta) + yy * math.sin(theta)
    else:
        cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)
        if kind == 1:
            t = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
        else:
            t = (np.arctan2(yy - cy, xx - cx) + math.pi) / (2 * math.pi)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = _random_color(rng), _random_color(rng)
    fill = c0 * (1.0 - t[..., None]) + c1 * t[..., None]
    out = (1.0 - s) * img.astype(np.float32) + s * fill
    return np.clip(out, 0, 255).round().astype(np.uint8)


FAMILIES: Dict[str, Transform] = {
    "hsv": hsv_shift,
    "texture": texture,
    "noise": noise,
    "blur": blur,
    "pattern": pattern,
    "gradient": gradient,
}


def _parse_families(families: Mapping[str, Any]) -> Dict[str, Dict[str, float]]:
    if not isinstance(families, Mapping):
        raise EdgeReidError("BackgroundAugment 'families' must be a mapping like {'hsv': {'p': 0.5, 'strength': 0.5}}.")
    parsed: Dict[str, Dict[str, float]] = {}
    for name, opts in families.items():
        if name not in FAMILIES:
            raise EdgeReidError(f"Unknown background augmentation family '{name}'; known: {', '.join(FAMILIES)}.")
        opts = dict(opts or {})
        bad = [k for k in opts if k not in ("p", "strength")]
        if bad:
            raise EdgeReidError(f"Background augmentation family '{name}' has unknown key '{bad[0]}'; known keys: p, strength.")
        vals = {}
        for key, default in (("p", 0.5), ("strength", 0.5)):
            v = opts.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
                raise EdgeReidError(f"Background augmentation '{name}.{key}' must be a number in [0, 1], got {v!r}.")
            vals[key] = float(v)
        parsed[name] = vals
    return parsed


class BackgroundAugment:
    """x' = m * x + (1 - m) * T(x): perturb only the background of an RGB uint8 image.

    ``provider`` gives the person mask; ``families`` maps family names to ``{"p", "strength"}``
    (families left out never fire); ``seed`` seeds the instance's generator.
    """

    def __init__(self, provider: MaskProvider, families: Mapping[str, Any], seed: Optional[int] = None) -> None:
        if not callable(provider):
            raise EdgeReidError("BackgroundAugment 'provider' must be a mask provider (callable image, path -> mask).")
        self.provider = provider
        self.families = _parse_families(families)
        self.rng = np.random.default_rng(seed)

    def __call__(
        self, image: np.ndarray, path: Optional[str] = None, rng: Optional[np.random.Generator] = None
    ) -> np.ndarray:
        """Augmented copy of ``image``; unchanged (a copy) when no family fires."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise InvalidInputError(f"BackgroundAugment expects an RGB uint8 H x W x 3 image, got {desc}.")
        gen = rng if rng is not None else self.rng
        fired = []
        for name in FAMILIES:  # fixed order, so the draws do not depend on the config's key order
            opts = self.families.get(name)
            if opts is not None and opts["p"] > 0 and gen.random() < opts["p"]:
                fired.append((name, opts["strength"]))
        if not fired:
            return image.copy()
        mask = fit_mask(self.provider(image, path), image.shape[:2])[..., None]
        t = np.ascontiguousarray(image)
        for name, strength in fired:
            t = FAMILIES[name](t, strength, gen)
        out = mask * image.astype(np.float32) + (1.0 - mask) * t.astype(np.float32)
        return np.clip(out, 0, 255).round().astype(np.uint8)


#: Families and their settings when a config names none: all six, each firing with p = 0.05, so
#: about 1 - 0.95^6 = 26% of the training samples get a new background; the paper's offline
#: pipeline grew Market-1501's training set from 32,668 to 42,872 images (24% augmented).
DEFAULT_FAMILIES: Dict[str, Dict[str, float]] = {name: {"p": 0.05, "strength": 0.5} for name in FAMILIES}


def build_background_augment(spec: Mapping[str, Any], seed: Optional[int] = None) -> BackgroundAugment:
    """The pre-transform a training config's ``data.augment.background`` section describes.

    ``provider`` (default ``dataset``: the masks stored with the dataset, which the synthetic
    generator writes) and ``families`` (default :data:`DEFAULT_FAMILIES`).
    """
    if not isinstance(spec, Mapping):
        raise InvalidInputError(
            f"'data.augment.background' must be a mapping with 'provider' and 'families', got {spec!r}."
        )
    unknown = sorted(set(spec) - {"provider", "families"})
    if unknown:
        raise InvalidInputError(f"'data.augment.background' has unknown key(s) {unknown}; known: families, provider.")
    families = spec.get("families", DEFAULT_FAMILIES)
    try:
        return BackgroundAugment(build_mask_provider(spec.get("provider", "dataset")), families, seed=seed)
    except EdgeReidError as exc:
        raise InvalidInputError(f"'data.augment.background': {exc}") from None
