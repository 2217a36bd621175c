"""Cameras: per-camera lighting (colour cast, brightness, contrast), scene, blur, viewpoint.

The camera is what changes between two pictures of the same person; its colour cast is
strong on purpose so that raw colour is an unreliable cue across cameras.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

VIEWS = ("front", "back", "left", "right")


@dataclass(frozen=True)
class Camera:
    """Fixed properties of one camera (1-based ``index`` as in Market-1501 names)."""

    index: int
    gains: Tuple[float, float, float]  # RGB white-balance multipliers
    brightness: float  # added after contrast, in [0, 1] units
    contrast: float
    blur: float  # Gaussian sigma in pixels at 128 x 64
    noise: float  # sensor noise std in [0, 1] units
    view_probs: Tuple[float, float, float, float]  # over VIEWS
    occlusion: float  # probability of an occluder in a crop
    scene_seed: int


def camera_rng(seed: int, index: int, stream: int = 2) -> np.random.Generator:
    """Generator for camera ``index`` under ``seed`` (``stream`` separates uses)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(index)]))


def make_camera(seed: int, index: int) -> Camera:
    """Sample camera ``index`` (1-based) deterministically from ``seed``."""
    rng = camera_rng(seed, index)
    gains = rng.uniform(0.9, 1.1, size=3)
    gains = gains / gains.mean() * rng.uniform(0.9, 1.1)
    probs = rng.dirichlet([1.2, 1.2, 0.8, 0.8])
    return Camera(
        index=int(index),
        gains=tuple(float(g) for g in gains),  # type: ignore[arg-type]
        brightness=float(rng.uniform(-0.08, 0.08)),
        contrast=float(rng.uniform(0.8, 1.15)),
        blur=float(rng.uniform(0.0, 1.2)),
        noise=float(rng.uniform(0.005, 0.03)),
        view_probs=tuple(float(p) for p in probs),  # type: ignore[arg-type]
        occlusion=float(rng.uniform(0.1, 0.35)),
        scene_seed=int(rng.integers(2**31 - 1)),
    )


def apply_lighting(image: np.ndarray, camera: Camera, jitter: Optional[np.ndarray] = None) -> np.ndarray:
    """Camera lighting of an RGB float image in [0, 1] (pointwise, so static scenes stay static).

    ``jitter`` (3 gains offsets and a brightness offset) varies the light between pictures.
    """
    j = np.zeros(4, np.float32) if jitter is None else np.asarray(jitter, np.float32)
    gains = np.asarray(camera.gains, np.float32) * (1.0 + j[:3])
    out = (image * gains - 0.5) * camera.contrast + 0.5 + camera.brightness + j[3]
    return np.clip(out, 0.0, 1.0)


def muted_colour(rng: np.random.Generator, lo: float = 0.15, hi: float = 0.85, saturation: float = 0.35) -> np.ndarray:
    """A random low-saturation colour (walls, pavements, clutter are mostly greyish)."""
    grey = rng.uniform(lo, hi)
    return np.clip(grey + saturation * (rng.uniform(lo, hi, 3) - grey), 0.0, 1.0).astype(np.float32)


def render_scene(camera: Camera, height: int, width: int) -> np.ndarray:
    """A static textured scene (RGB float32 in [0, 1], before lighting) of this camera."""
    rng = np.random.default_rng(camera.scene_seed)
    horizon = int(height * rng.uniform(0.45, 0.7))
    wall = muted_colour(rng, 0.3, 0.8)
    ground = muted_colour(rng, 0.25, 0.6, 0.2)
    scene = np.empty((height, width, 3), np.float32)
    scene[:horizon] = wall
    scene[horizon:] = ground
    kind = int(rng.integers(3))
    if kind == 0:  # bricks
        bh = max(4, height // int(rng.integers(12, 24)))
        bw = bh * 2
        mortar = wall * 0.7
        for row, y in enumerate(range(0, horizon, bh)):
            scene[y:y + 1, :] = mortar
            off = (row % 2) * bw // 2
            for x in range(off, width, bw):
                scene[y:min(y + bh, horizon), x:x + 1] = mortar
    elif kind == 1:  # vertical panels / shop fronts
        x = 0
        while x < width:
            w = int(rng.integers(width // 12 + 4, width // 4 + 8))
            scene[:horizon, x:x + w] = np.clip(wall + rng.normal(0, 0.06, 3), 0, 1)
            x += w
    else:  # gradient wall with windows
        grad = np.linspace(0.8, 1.15, horizon, dtype=np.float32)[:, None, None]
        scene[:horizon] = np.clip(wall * grad, 0, 1)
    x = 0
    while x < width:  # facade segments of different colours: backgrounds vary within a camera
        w = int(rng.integers(width // 40 + 6, width // 10 + 12))
        scene[:horizon, x:x + w] = muted_colour(rng)
        x += w
    x = 0
    while x < width:  # pavement, grass, asphalt patches
        w = int(rng.integers(width // 30 + 8, width // 8 + 16))
        scene[horizon:, x:x + w] = muted_colour(rng, 0.2, 0.7, 0.3)
        x += w
    for _ in range(int(rng.integers(3, 7)) * max(1, width // 160)):  # windows, signs, plants
        w = int(rng.integers(width // 16 + 2, width // 5 + 4))
        h = int(rng.integers(height // 12 + 2, max(height // 12 + 3, horizon // 2)))
        x = int(rng.integers(0, max(1, width - w)))
        y = int(rng.integers(0, max(1, horizon - h)))
        colour = tuple(float(c) for c in muted_colour(rng, 0.05, 0.95, 0.6))
        cv2.rectangle(scene, (x, y), (x + w, y + h), colour, -1)
    tile = max(6, height // int(rng.integers(6, 14)))  # ground tiles
    for y in range(horizon, height, tile):
        scene[y:y + 1, :] *= 0.8
    for x in range(0, width, tile * 2):
        scene[horizon:, x:x + 1] *= 0.85
    scene += rng.normal(0, 0.025, size=scene.shape).astype(np.float32)
    scene = cv2.GaussianBlur(scene, (3, 3), 0.7)
    return np.clip(scene, 0.0, 1.0)


def sample_view(camera: Camera, rng: np.random.Generator) -> str:
    """Pick a viewpoint with this camera's view distribution."""
    return VIEWS[int(rng.choice(4, p=np.asarray(camera.view_probs)))]
