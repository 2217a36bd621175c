"""Annotate frames: a box per tracked person with track id, identity and similarity, plus FPS."""

from __future__ import annotations

import numpy as np

from edge_reid.stream.pipeline import FrameResult

_UNKNOWN = (160, 160, 160)


def identity_colour(identity: int) -> tuple:
    """A stable, well-spread BGR colour per identity id."""
    hue = (identity * 47) % 180
    import cv2

    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_result(result: FrameResult, fps: float = 0.0) -> np.ndarray:
    """A copy of the frame with boxes, ``T<track> <name> <similarity>`` labels, camera and FPS."""
    import cv2

    image = result.packet.frame.copy()
    h = image.shape[0]
    scale = max(0.4, h / 720.0)
    thick = max(1, int(round(2 * scale)))
    for box in result.boxes:
        x1, y1, x2, y2 = (int(round(v)) for v in box.box)
        colour = identity_colour(box.identity) if box.identity is not None else _UNKNOWN
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thick)
        label = f"T{box.track_id} " + (f"{box.name} {box.score:.2f}" if box.identity is not None else "?")
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        ty = max(th + base, y1)
        cv2.rectangle(image, (x1, ty - th - base), (x1 + tw + 2, ty), colour, -1)
        cv2.putText(image, label, (x1 + 1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    header = f"{result.packet.camera_id}  frame {result.packet.frame_index}  {fps:.1f} FPS"
    cv2.putText(image, header, (8, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, header, (8, int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return image
