"""A constant-velocity Kalman filter over boxes (centre x, centre y, width, height and their velocities).

The noise model follows SORT/ByteTrack's: position and size noise proportional to the box
height, so a tall (near) person may move more pixels per frame than a small (far) one.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

_POS, _VEL = 1.0 / 20, 1.0 / 160  # noise per unit height (ByteTrack's weights)


def xyxy_to_cxcywh(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 1.0), max(y2 - y1, 1.0)], np.float64)


def cxcywh_to_xyxy(s: np.ndarray) -> np.ndarray:
    cx, cy, w, h = (float(v) for v in s[:4])
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float64)


class BoxKalman:
    """State (cx, cy, w, h, vx, vy, vw, vh); ``predict()`` one frame ahead, ``update(box)`` with a measurement."""

    _F = np.eye(8) + np.eye(8, k=4)
    _H = np.eye(4, 8)

    def __init__(self, box: np.ndarray) -> None:
        z = xyxy_to_cxcywh(box)
        self.x = np.concatenate([z, np.zeros(4)])
        h = z[3]
        std = np.array([2 * _POS * h, 2 * _POS * h, 2 * _POS * h, 2 * _POS * h,
                        10 * _VEL * h, 10 * _VEL * h, 10 * _VEL * h, 10 * _VEL * h])
        self.P = np.diag(std ** 2)

    def predict(self) -> None:
        h = max(self.x[3], 1.0)
        q = np.array([_POS * h] * 4 + [_VEL * h] * 4) ** 2
        self.x = self._F @ self.x
        self.P = self._F @ self.P @ self._F.T + np.diag(q)
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)

    def update(self, box: np.ndarray) -> None:
        z = xyxy_to_cxcywh(box)
        r = np.diag(np.array([_POS * z[3]] * 4) ** 2)
        s = self._H @ self.P @ self._H.T + r
        k = np.linalg.solve(s, self._H @ self.P).T
        self.x = self.x + k @ (z - self._H @ self.x)
        self.P = (np.eye(8) - k @ self._H) @ self.P

    def box(self) -> np.ndarray:
        """The current (predicted or corrected) box as x1, y1, x2, y2."""
        return cxcywh_to_xyxy(self.x)

    def centre_height(self) -> Tuple[float, float, float]:
        return float(self.x[0]), float(self.x[1]), float(self.x[3])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N x 4) and ``b`` (M x 4), x1 y1 x2 y2."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
