"""Drawing one person (RGB + mask) and composing a 128 x 64 camera crop.

``draw_person`` paints an identity seen from one viewpoint on a tight transparent canvas;
``render_crop`` places it in a camera's scene with jitter, scale, occluders, lighting, blur
and noise. Both return the person mask, so training can swap backgrounds.
"""

from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from edge_reid.data.synthetic.cameras import Camera, apply_lighting, muted_colour, render_scene, sample_view
from edge_reid.data.synthetic.identity import RGB, Identity

CROP_SIZE: Tuple[int, int] = (128, 64)  # (height, width), Market-1501 native
SUPERSAMPLE = 2


def _c(rgb: RGB) -> Tuple[float, float, float]:
    return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)


def _poly(img: np.ndarray, alpha: np.ndarray, pts: np.ndarray, colour: RGB) -> None:
    p = np.round(pts).astype(np.int32)
    cv2.fillPoly(img, [p], _c(colour))
    cv2.fillPoly(alpha, [p], 255)


def _ellipse(img: np.ndarray, alpha: np.ndarray, centre, axes, colour: RGB, start=0, end=360) -> None:
    c = (int(round(centre[0])), int(round(centre[1])))
    a = (max(1, int(round(axes[0]))), max(1, int(round(axes[1]))))
    cv2.ellipse(img, c, a, 0, start, end, _c(colour), -1)
    cv2.ellipse(alpha, c, a, 0, start, end, 255, -1)


def _texture(ident: Identity, view: str, mask: np.ndarray, box, h: float) -> np.ndarray:
    """Colour image of the identity's top texture over the torso box (x0, y0, x1, y1)."""
    H, W = mask.shape
    out = np.empty((H, W, 3), np.float32)
    out[:] = _c(ident.top_colour)
    c2 = np.asarray(_c(ident.top_colour2), np.float32)
    x0, y0, x1, y1 = box
    period = max(2.0, ident.texture_scale * h)
    yy, xx = np.mgrid[0:H, 0:W]
    if ident.top_texture == "stripes":
        sel = ((yy - y0) // period).astype(int) % 2 == 1
        out[sel] = c2
    elif ident.top_texture == "checks":
        sel = (((yy - y0) // period).astype(int) + ((xx - x0) // period).astype(int)) % 2 == 1
        out[sel] = c2
    elif ident.top_texture == "two_tone":  # jacket yoke: upper torso in the second colour
        out[yy < y0 + 0.4 * (y1 - y0)] = c2
    elif ident.top_texture == "logo" and view == "front":
        cx, cy = (x0 + x1) / 2, y0 + 0.35 * (y1 - y0)
        r = 0.22 * (x1 - x0)
        out[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = c2
        out[(np.abs(xx - cx) < r * 0.3) & (np.abs(yy - cy) < r * 1.4)] = _c(ident.top_colour)
    elif ident.top_texture == "print":
        rng = np.random.default_rng(ident.print_seed + (0 if view == "front" else 1))
        for fx, fy in rng.random((7, 2)):
            cx, cy = x0 + fx * (x1 - x0), y0 + fy * (y1 - y0)
            r = max(1.5, 0.035 * h)
            out[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = c2
    return out


def draw_person(ident: Identity, view: str, height_px: int, phase: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Paint ``ident`` seen from ``view`` ('front', 'back', 'left', 'right'), ``height_px`` tall.

    Returns an RGB float32 canvas in [0, 1] and a uint8 mask (255 = person); the feet touch
    the bottom edge and the canvas is about 0.62 * height wide. ``phase`` animates walking.
    """
    h = float(height_px)
    H, W = int(round(h * 1.04)), int(round(h * 0.62))
    img = np.zeros((H, W, 3), np.float32)
    alpha = np.zeros((H, W), np.uint8)
    top = H - h  # head top (room above for a hat)
    cx = W / 2
    side = view in ("left", "right")
    facing = -1 if view == "left" else 1  # side views: direction the person faces
    sw = 0.155 * h * ident.width * (0.55 if side else 1.0)  # half shoulder width
    hw = 0.115 * h * ident.width * (0.6 if side else 1.0)  # half hip width
    head_r = 0.062 * h
    neck_y = top + 0.13 * h
    hip_y = top + h * (1.0 - ident.leg_frac) - 0.02 * h
    foot_y = top + 0.975 * h
    swing = np.sin(phase) * 0.09 * h if side else np.sin(phase) * 0.015 * h

    # backpack behind the body in side and front views
    if ident.backpack is not None and side:
        bx = cx - facing * sw
        _poly(img, alpha, np.array([[bx, neck_y + 0.03 * h], [bx - facing * 0.09 * h, neck_y + 0.05 * h],
                                    [bx - facing * 0.09 * h, hip_y - 0.04 * h], [bx, hip_y - 0.02 * h]]),
              ident.backpack)
    # legs
    leg_w = 0.065 * h * ident.width * (0.9 if side else 1.0)
    legs = (-1, 1)
    for k, s in enumerate(legs):
        lx = cx + (s * hw * 0.5 if not side else 0.0)
        fx = lx + (swing if k == 0 else -swing) + (0 if side else s * 0.01 * h)
        pts = np.array([[lx - leg_w, hip_y], [lx + leg_w, hip_y], [fx + leg_w * 0.8, foot_y], [fx - leg_w * 0.8, foot_y]])
        _poly(img, alpha, pts, ident.skin)
        if ident.bottom_kind == "trousers":
            _poly(img, alpha, pts, ident.bottom_colour)
        elif ident.bottom_kind == "shorts":
            mid = pts.copy()
            mid[2:] = pts[:2][::-1] * 0.55 + pts[2:] * 0.45
            _poly(img, alpha, mid, ident.bottom_colour)
        shoe_dx = facing * 0.03 * h if side else 0.0
        _ellipse(img, alpha, (fx + shoe_dx, foot_y), (leg_w * (1.5 if side else 1.1), 0.022 * h), ident.shoe_colour)
    if ident.bottom_kind == "skirt":
        _poly(img, alpha, np.array([[cx - hw, hip_y - 0.02 * h], [cx + hw, hip_y - 0.02 * h],
                                    [cx + hw * 1.5, hip_y + 0.2 * h], [cx - hw * 1.5, hip_y + 0.2 * h]]),
              ident.bottom_colour)
    else:
        _poly(img, alpha, np.array([[cx - hw, hip_y - 0.03 * h], [cx + hw, hip_y - 0.03 * h],
                                    [cx + hw, hip_y + 0.05 * h], [cx - hw, hip_y + 0.05 * h]]),
              ident.bottom_colour)
    # torso with texture
    torso = np.array([[cx - sw, neck_y + 0.02 * h], [cx + sw, neck_y + 0.02 * h],
                      [cx + hw * 1.05, hip_y + 0.01 * h], [cx - hw * 1.05, hip_y + 0.01 * h]])
    tmask = np.zeros_like(alpha)
    cv2.fillPoly(tmask, [np.round(torso).astype(np.int32)], 255)
    tex = _texture(ident, view, tmask, (cx - sw, neck_y, cx + sw, hip_y), h)
    sel = tmask > 0
    img[sel] = tex[sel]
    alpha |= tmask
    # arms
    arm_w = max(1, int(round(0.045 * h * ident.width)))
    sleeve = ident.top_colour
    arm_len = (hip_y - neck_y) * 0.95
    arm_xs = (cx + facing * 0.0,) if side else (cx - sw - arm_w * 0.4, cx + sw + arm_w * 0.4)
    for k, ax in enumerate(arm_xs):
        sx, sy = ax, neck_y + 0.04 * h
        dx = (-swing * 0.8) if side else (0.02 * h * (-1 if k == 0 else 1))
        ex, ey = sx + dx, sy + arm_len
        p_mid = (int(round(sx + dx * 0.5)), int(round(sy + arm_len * 0.5)))
        colour_low = _c(sleeve) if ident.long_sleeves else _c(ident.skin)
        cv2.line(img, (int(round(sx)), int(round(sy))), p_mid, _c(sleeve), arm_w * 2)
        cv2.line(img, p_mid, (int(round(ex)), int(round(ey))), colour_low, arm_w * 2)
        cv2.line(alpha, (int(round(sx)), int(round(sy))), (int(round(ex)), int(round(ey))), 255, arm_w * 2)
        _ellipse(img, alpha, (ex, ey), (arm_w * 0.9, arm_w * 0.9), ident.skin)
    # backpack over the back, straps from the front
    if ident.backpack is not None and view == "back":
        _poly(img, alpha, np.array([[cx - sw * 0.75, neck_y + 0.04 * h], [cx + sw * 0.75, neck_y + 0.04 * h],
                                    [cx + sw * 0.7, hip_y - 0.03 * h], [cx - sw * 0.7, hip_y - 0.03 * h]]),
              ident.backpack)
    elif ident.backpack is not None and view == "front":
        for s in (-1, 1):
            x = cx + s * sw * 0.6
            cv2.line(img, (int(x), int(neck_y + 0.02 * h)), (int(x), int(neck_y + 0.2 * h)),
                     _c(ident.backpack), max(1, int(0.02 * h)))
    # shoulder bag at the hip on its side (hidden behind the body from the other side)
    if ident.bag is not None:
        visible = not side or (ident.bag_side == 1) == (view == "right")
        if visible:
            bside = ident.bag_side * (-1 if view == "back" else 1)
            bx = cx + bside * (sw + 0.02 * h) if not side else cx
            _poly(img, alpha, np.array([[bx - 0.05 * h, hip_y - 0.06 * h], [bx + 0.05 * h, hip_y - 0.06 * h],
                                        [bx + 0.05 * h, hip_y + 0.05 * h], [bx - 0.05 * h, hip_y + 0.05 * h]]),
                  ident.bag)
            cv2.line(img, (int(cx - bside * sw * 0.6), int(neck_y + 0.02 * h)), (int(bx), int(hip_y - 0.06 * h)),
                     _c(ident.bag), max(1, int(0.015 * h)))
    # head, hair, hat
    head_c = (cx + (facing * 0.01 * h if side else 0.0), top + 0.07 * h)
    _ellipse(img, alpha, (cx, neck_y), (0.025 * h, 0.02 * h), ident.skin)
    _ellipse(img, alpha, head_c, (head_r * 0.85, head_r), ident.skin)
    if ident.hair_style != "bald":
        if ident.hair_style == "long":
            back_x = head_c[0] - (facing * head_r * 0.4 if side else 0.0)
            if view == "back":
                _poly(img, alpha, np.array([[back_x - head_r, head_c[1]], [back_x + head_r, head_c[1]],
                                            [back_x + head_r, neck_y + 0.07 * h], [back_x - head_r, neck_y + 0.07 * h]]),
                      ident.hair_colour)
            elif side:
                _poly(img, alpha, np.array([[back_x - head_r * 0.5, head_c[1]], [back_x + head_r * 0.5, head_c[1]],
                                            [back_x + head_r * 0.5, neck_y + 0.06 * h], [back_x - head_r * 0.5, neck_y + 0.06 * h]]),
                      ident.hair_colour)
        if view == "back":
            _ellipse(img, alpha, head_c, (head_r * 0.88, head_r * 1.03), ident.hair_colour)
        else:
            _ellipse(img, alpha, head_c, (head_r * 0.9, head_r * 1.05), ident.hair_colour, 180, 360)
    if ident.hat is not None:
        _ellipse(img, alpha, (head_c[0], head_c[1] - head_r * 0.3), (head_r * 0.95, head_r * 0.85), ident.hat, 180, 360)
        brim_dx = facing * head_r * 0.6 if side else 0.0
        _ellipse(img, alpha, (head_c[0] + brim_dx, head_c[1] - head_r * 0.3), (head_r * 1.15, head_r * 0.18), ident.hat)
    return img, alpha


def composite(dst: np.ndarray, dst_mask: Optional[np.ndarray], person: np.ndarray, alpha: np.ndarray,
              x: int, y: int) -> None:
    """Alpha-blend ``person`` (float RGB, uint8 alpha) onto ``dst`` with its top-left at (x, y), in place."""
    H, W = dst.shape[:2]
    ph, pw = alpha.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + pw), min(H, y + ph)
    if x0 >= x1 or y0 >= y1:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32)[..., None] / 255.0
    dst[y0:y1, x0:x1] = dst[y0:y1, x0:x1] * (1 - a) + person[y0 - y:y1 - y, x0 - x:x1 - x] * a
    if dst_mask is not None:
        dst_mask[y0:y1, x0:x1] = np.maximum(dst_mask[y0:y1, x0:x1], alpha[y0 - y:y1 - y, x0 - x:x1 - x])


def draw_scaled(ident: Identity, view: str, height_px: int, phase: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """``draw_person`` rendered at SUPERSAMPLE x and reduced (anti-aliased edges and mask)."""
    img, alpha = draw_person(ident, view, height_px * SUPERSAMPLE, phase)
    size = (max(1, alpha.shape[1] // SUPERSAMPLE), max(1, alpha.shape[0] // SUPERSAMPLE))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)


def _occlude(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Draw a pole, a low object or a box over the crop and cut it out of the mask."""
    H, W = mask.shape
    occ = np.zeros((H, W), np.uint8)
    kind = int(rng.integers(3))
    colour = tuple(float(c) for c in rng.uniform(0.1, 0.8, 3))
    if kind == 0:  # pole
        w = int(rng.integers(4, 10))
        x = int(rng.integers(0, W - w))
        cv2.rectangle(occ, (x, 0), (x + w, H), 255, -1)
    elif kind == 1:  # bench, bin or car bonnet over the legs
        y = int(rng.integers(int(H * 0.62), int(H * 0.85)))
        cv2.rectangle(occ, (-1, y), (W, H), 255, -1)
    else:  # a box at one side
        w = int(rng.integers(W // 4, W // 2))
        y = int(rng.integers(H // 3, H // 2))
        x = 0 if rng.random() < 0.5 else W - w
        cv2.rectangle(occ, (x, y), (x + w, H), 255, -1)
    sel = occ > 0
    img[sel] = colour
    img[sel] *= rng.uniform(0.8, 1.0, size=(int(sel.sum()), 1)).astype(np.float32)
    mask[sel] = 0


def finish(img: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """Camera lighting, blur and noise; RGB float in [0, 1] -> RGB uint8."""
    img = apply_lighting(img, camera, jitter=rng.normal(0, [0.04, 0.04, 0.04, 0.04]))
    sigma = camera.blur + float(rng.uniform(0, 0.6))
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    img = img + rng.normal(0, camera.noise, size=img.shape).astype(np.float32)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def background_window(scene: np.ndarray, size: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random ``size`` window of the camera's ``scene`` (a copy): the crop's background."""
    h, w = size
    sy = int(rng.integers(0, scene.shape[0] - h + 1))
    sx = int(rng.integers(0, scene.shape[1] - w + 1))
    return scene[sy:sy + h, sx:sx + w].copy()


def render_crop(ident: Identity, camera: Camera, scene: np.ndarray, rng: np.random.Generator,
                view: Optional[str] = None, occlusion: Optional[bool] = None,
                size: Tuple[int, int] = CROP_SIZE) -> Tuple[np.ndarray, np.ndarray]:
    """A detector-like crop of ``ident`` in ``camera``: RGB uint8 (H, W, 3) and mask uint8 (H, W).

    ``scene`` is the camera's scene (any size at least ``size``); a random window of it is
    the background. The person gets a random view (camera-biased), walking phase, scale and
    position jitter; occluders, lighting, blur and noise follow.
    """
    H, W = size
    view = view or sample_view(camera, rng)
    img = background_window(scene, size, rng)
    mask = np.zeros((H, W), np.uint8)
    for _ in range(int(rng.integers(0, 4))):  # clutter behind the person
        colour = tuple(float(c) for c in muted_colour(rng, 0.1, 0.9, 0.5))
        x0, y0 = int(rng.integers(-W // 2, W)), int(rng.integers(0, H))
        cv2.rectangle(img, (x0, y0), (x0 + int(rng.integers(8, W)), y0 + int(rng.integers(8, H // 2))), colour, -1)
    height = int(round(H * ident.height * rng.uniform(0.9, 1.05)))
    person, alpha = draw_scaled(ident, view, height, phase=float(rng.uniform(0, 2 * np.pi)))
    x = (W - alpha.shape[1]) // 2 + int(round(rng.normal(0, 0.06 * W)))
    y = H - alpha.shape[0] - int(round(rng.uniform(0.0, 0.06) * H)) + int(round(rng.normal(0, 0.02 * H)))
    composite(img, mask, person, alpha, x, y)
    if occlusion if occlusion is not None else rng.random() < camera.occlusion:
        _occlude(img, mask, rng)
    return finish(img, camera, rng), mask


def scene_for(camera: Camera, size: Tuple[int, int] = CROP_SIZE) -> np.ndarray:
    """The scene a camera's crops are cut from (wider than a crop so backgrounds vary)."""
    return render_scene(camera, int(size[0] * 1.25), size[1] * 16)
