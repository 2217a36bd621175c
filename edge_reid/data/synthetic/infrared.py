"""The infrared look: the same rendered person as a thermal camera sees them.

A thermal image loses clothing colour but keeps what emits or blocks heat: the body shape and
pose (the same drawing as the visible crop), warm skin and hair brighter than clothing, clothing
brighter than the cold background, carried items (bags, backpacks, hats) as cool shapes over the
body, and clothing texture as intensity (each fabric colour maps to a grey level through its
luminance, plus a per-identity emissivity offset, so stripes stay stripes but red and green may
merge). The sensor has its own gain, low resolution (blur), column noise and grain.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import cv2
import numpy as np

from edge_reid.data.synthetic.cameras import Camera, render_scene, sample_view
from edge_reid.data.synthetic.identity import RGB, Identity
from edge_reid.data.synthetic.render import CROP_SIZE, _occlude, background_window, composite, draw_scaled

SKIN_LEVEL = 232  # warm skin (grey level of 255)
HAIR_LEVEL = 165
SHOE_LEVEL = 72
CARRIED_LEVEL = 58  # bags and backpacks are at ambient temperature: cool over a warm body


def _grey(level: float) -> RGB:
    v = int(np.clip(round(level), 0, 255))
    return (v, v, v)


def cloth_level(colour: RGB, offset: float) -> float:
    """Thermal grey level of a fabric of this visible colour (luminance -> intensity, compressed)."""
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return 100.0 + 0.32 * luminance + offset


def thermal_identity(ident: Identity) -> Identity:
    """``ident`` with every colour replaced by its thermal grey level (shape fields untouched)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(ident.print_seed), 7]))
    offset = float(rng.uniform(-12.0, 12.0))  # the fabric's emissivity, fixed for the person
    carried = lambda c: None if c is None else _grey(CARRIED_LEVEL + 0.08 * sum(c) / 3)  # noqa: E731
    return dataclasses.replace(
        ident,
        skin=_grey(SKIN_LEVEL), hair_colour=_grey(HAIR_LEVEL),
        top_colour=_grey(cloth_level(ident.top_colour, offset)),
        top_colour2=_grey(cloth_level(ident.top_colour2, offset)),
        bottom_colour=_grey(cloth_level(ident.bottom_colour, offset - 8.0)),
        shoe_colour=_grey(SHOE_LEVEL),
        backpack=carried(ident.backpack), bag=carried(ident.bag),
        hat=None if ident.hat is None else _grey(HAIR_LEVEL - 45),
    )


def thermal_scene(camera: Camera, size: Tuple[int, int] = CROP_SIZE) -> np.ndarray:
    """The camera's scene as a cold, low-contrast, smooth grey image (3 equal channels)."""
    return thermal_background(render_scene(camera, int(size[0] * 1.25), size[1] * 16))


def thermal_background(scene: np.ndarray) -> np.ndarray:
    """A visible RGB float background (or scenery) as a thermal camera sees it: cold, low-contrast, smooth."""
    grey = scene.mean(axis=2, keepdims=True) * 0.3 + 0.1
    grey = cv2.GaussianBlur(grey, (0, 0), 1.5)[..., None]
    return np.repeat(grey, 3, axis=2).astype(np.float32)


def finish_infrared(img: np.ndarray, camera: Camera, rng: np.random.Generator,
                    sensor: Optional[np.random.Generator] = None) -> np.ndarray:
    """Thermal sensor: grey, automatic gain, low resolution, column noise, grain -> uint8 RGB.

    ``sensor`` draws the gain, offset and blur (a video's frames share one: a generator seeded the
    same for every frame); ``rng`` the grain (and the rest, without ``sensor``)."""
    sensor = rng if sensor is None else sensor
    H, W = img.shape[:2]
    grey = img.mean(axis=2)
    grey = grey * float(sensor.uniform(0.85, 1.15)) + float(sensor.uniform(-0.06, 0.06))
    small = cv2.resize(grey, (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    grey = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    grey = cv2.GaussianBlur(grey, (0, 0), 0.6 + camera.blur * 0.5 + float(sensor.uniform(0, 0.5)))
    columns = np.random.default_rng(camera.scene_seed).normal(0, 0.015, size=(1, W)).astype(np.float32)
    grey = grey + columns + rng.normal(0, 0.02 + camera.noise, size=grey.shape).astype(np.float32)
    out = np.clip(grey * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=2)


def render_infrared_crop(ident: Identity, camera: Camera, scene: np.ndarray, rng: np.random.Generator,
                         view: Optional[str] = None, size: Tuple[int, int] = CROP_SIZE) -> Tuple[np.ndarray, np.ndarray]:
    """An infrared crop of ``ident``: RGB uint8 (three equal channels) and the person mask.

    ``scene`` comes from :func:`thermal_scene`; framing, pose and occlusion are drawn as in the
    visible renderer, the look is thermal.
    """
    H, W = size
    view = view or sample_view(camera, rng)
    img = background_window(scene, size, rng)
    mask = np.zeros((H, W), np.uint8)
    for _ in range(int(rng.integers(0, 3))):  # cold or lukewarm clutter behind the person
        level = float(rng.uniform(0.05, 0.45))
        x0, y0 = int(rng.integers(-W // 2, W)), int(rng.integers(0, H))
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(8, W)), y0 + int(rng.integers(8, H // 2))), (level,) * 3, -1)
    height = int(round(H * ident.height * rng.uniform(0.9, 1.05)))
    person, alpha = draw_scaled(thermal_identity(ident), view, height, phase=float(rng.uniform(0, 2 * np.pi)))
    x = (W - alpha.shape[1]) // 2 + int(round(rng.normal(0, 0.06 * W)))
    y = H - alpha.shape[0] - int(round(rng.uniform(0.0, 0.06) * H)) + int(round(rng.normal(0, 0.02 * H)))
    composite(img, mask, person, alpha, x, y)
    if rng.random() < camera.occlusion:
        _occlude(img, mask, rng)
    return finish_infrared(img, camera, rng), mask
