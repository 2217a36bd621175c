"""Ranked-list pictures: per query row, the query then its top-k gallery images.

Borders say whether each retrieved image is the right person (green) or not (red); junk
(same person, same camera) is left out exactly as the metric leaves it out. The picture is
a PNG written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from edge_reid.errors import InvalidInputError
from edge_reid.utils.atomic import atomic_write

#: BGR colours of the borders.
QUERY_COLOUR = (255, 128, 0)
CORRECT_COLOUR = (0, 255, 0)
WRONG_COLOUR = (0, 0, 255)
BACKGROUND = 255
DEFAULT_NAME = "ranked_lists.png"


@dataclass(frozen=True)
class GridLayout:
    """Geometry of the grid: tiles of ``tile`` (H, W) pixels including a ``border`` frame."""

    rows: int
    topk: int
    tile: Tuple[int, int] = (128, 64)
    border: int = 4
    margin: int = 4
    query_gap: int = 12

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width) of the whole picture."""
        h, w = self.tile
        height = self.margin + self.rows * (h + self.margin)
        width = self.margin + w + self.query_gap + self.topk * (w + self.margin)
        return height, width

    def cell_origin(self, row: int, col: int) -> Tuple[int, int]:
        """Top-left (y, x) of a tile; column 0 is the query, 1..topk its ranked results."""
        h, w = self.tile
        y = self.margin + row * (h + self.margin)
        x = self.margin if col == 0 else self.margin + w + self.query_gap + (col - 1) * (w + self.margin)
        return y, x


def _tile(path: str, layout: GridLayout, colour: Tuple[int, int, int]) -> np.ndarray:
    """The image at ``path`` resized inside a coloured frame (grey with a cross if unreadable)."""
    import cv2

    h, w = layout.tile
    b = layout.border
    tile = np.empty((h, w, 3), dtype=np.uint8)
    tile[:] = colour
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        inner = np.full((h - 2 * b, w - 2 * b, 3), 128, dtype=np.uint8)
        cv2.line(inner, (0, 0), (w - 2 * b - 1, h - 2 * b - 1), (60, 60, 60), 1)
        cv2.line(inner, (w - 2 * b - 1, 0), (0, h - 2 * b - 1), (60, 60, 60), 1)
    else:
        inner = cv2.resize(image, (w - 2 * b, h - 2 * b), interpolation=cv2.INTER_AREA)
    tile[b : h - b, b : w - b] = inner
    return tile


def _select_queries(num_q: int, num_queries: int) -> np.ndarray:
    """``num_queries`` query rows spread evenly over all of them (deterministic)."""
    return np.unique(np.linspace(0, num_q - 1, min(num_q, num_queries)).round().astype(int))


def save_ranked_lists(
    distmat: np.ndarray,
    query_records: Sequence[Any],
    gallery_records: Sequence[Any],
    out: Union[str, Path],
    topk: int = 10,
    num_queries: int = 8,
    q_pids: Optional[Sequence[int]] = None,
    g_pids: Optional[Sequence[int]] = None,
    q_camids: Optional[Sequence[int]] = None,
    g_camids: Optional[Sequence[int]] = None,
) -> Path:
    """Write the ranked-list grid to ``out`` (a .png file, or a folder for ranked_lists.png).

    Records are ``(path, pid, camid)`` aligned with the rows / columns of ``distmat``; the
    optional id / camera arrays override the records' own.
    """
    import cv2

    dist = np.asarray(distmat)
    if dist.ndim != 2:
        raise InvalidInputError(f"The distance matrix must be 2-D, got {dist.ndim} dimension(s).")
    if dist.shape != (len(query_records), len(gallery_records)):
        raise InvalidInputError(
            f"The distance matrix is {dist.shape[0]} x {dist.shape[1]} but there are "
            f"{len(query_records)} query and {len(gallery_records)} gallery records."
        )
    if topk < 1 or num_queries < 1:
        raise InvalidInputError(f"topk and num_queries must be at least 1, got {topk} and {num_queries}.")
    if dist.size == 0:
        raise InvalidInputError("There are no query or gallery images to draw.")
    qp = np.asarray(q_pids if q_pids is not None else [r[1] for r in query_records])
    gp = np.asarray(g_pids if g_pids is not None else [r[1] for r in gallery_records])
    qc = np.asarray(q_camids if q_camids is not None else [r[2] for r in query_records])
    gc = np.asarray(g_camids if g_camids is not None else [r[2] for r in gallery_records])

    rows = _select_queries(dist.shape[0], num_queries)
    layout = GridLayout(rows=len(rows), topk=int(topk))
    canvas = np.full((*layout.size, 3), BACKGROUND, dtype=np.uint8)
    h, w = layout.tile
    for r, qi in enumerate(rows):
        y, x = layout.cell_origin(r, 0)
        canvas[y : y + h, x : x + w] = _tile(query_records[qi][0], layout, QUERY_COLOUR)
        order = np.argsort(dist[qi], kind="stable")
        order = order[~((gp[order] == qp[qi]) & (gc[order] == qc[qi]))][:topk]
        for col, gi in enumerate(order, start=1):
            colour = CORRECT_COLOUR if gp[gi] == qp[qi] else WRONG_COLOUR
            y, x = layout.cell_origin(r, col)
            canvas[y : y + h, x : x + w] = _tile(gallery_records[gi][0], layout, colour)

    target = Path(out)
    if target.suffix.lower() != ".png":
        target = target / DEFAULT_NAME
    ok, encoded = cv2.imencode(".png", canvas)
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR image as PNG
        raise InvalidInputError(f"OpenCV could not encode the ranked-list picture for {target}.")
    with atomic_write(target, "wb") as handle:
        handle.write(encoded.tobytes())
    return target
