"""Outputs of a stream run: JSONL event log, annotated videos, an optional window, the summary.

Each output is a *sink* with ``write(result, fps)`` and ``close()``; the pipeline calls
``close()`` on every sink even when a source fails, so files are always complete.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any, Dict, Optional

from edge_reid.stream.drawing import draw_result
from edge_reid.stream.pipeline import FrameResult
from edge_reid.utils.atomic import atomic_write_json


class EventLog:
    """One JSON line per tracked person per frame: camera, frame, time, track, identity, score, box."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: Optional[IO[str]] = open(self.path, "w")
        self.lines = 0

    def write(self, result: FrameResult, fps: float) -> None:
        packet = result.packet
        for b in result.boxes:
            self._handle.write(json.dumps({
                "camera": packet.camera_id, "frame": packet.frame_index, "time": round(packet.timestamp, 3),
                "track": b.track_id, "identity": b.identity, "name": b.name, "score": round(b.score, 4),
                "confidence": round(b.confidence, 3), "box": [round(v, 1) for v in b.box],
            }) + "\n")
            self.lines += 1

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class AnnotatedVideo:
    """One annotated MP4 per camera (``annotated_<camera>.mp4``); also keeps the last frame drawn."""

    def __init__(self, folder: Path, fps: float = 10.0, fourcc: str = "mp4v") -> None:
        self.folder, self.fps, self.fourcc = Path(folder), float(fps or 10.0), fourcc
        self._writers: Dict[str, Any] = {}
        self.last: Dict[str, Any] = {}

    def write(self, result: FrameResult, fps: float) -> None:
        import cv2

        image = draw_result(result, fps)
        camera = result.packet.camera_id
        if camera not in self._writers:
            self.folder.mkdir(parents=True, exist_ok=True)
            h, w = image.shape[:2]
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in camera)
            self._writers[camera] = cv2.VideoWriter(str(self.folder / f"annotated_{safe}.mp4"),
                                                    cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
        self._writers[camera].write(image)
        if result.boxes:
            self.last[camera] = image

    def close(self) -> None:
        for writer in self._writers.values():
            writer.release()
        self._writers.clear()


def display_available() -> Optional[str]:
    """None when a window can be shown, else why not (one sentence)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "No display is available (DISPLAY is not set), so --show is ignored; see the annotated videos instead."
    try:
        import cv2

        cv2.namedWindow("edge-reid", cv2.WINDOW_NORMAL)
    except Exception:
        return "This OpenCV build has no GUI support (opencv-python-headless), so --show is ignored."
    return None


class Window:
    """Shows annotated frames, one window per camera; ``q`` or Esc stops the run."""

    def __init__(self) -> None:
        self.stop = False

    def write(self, result: FrameResult, fps: float) -> None:
        import cv2

        cv2.imshow(f"edge-reid {result.packet.camera_id}", draw_result(result, fps))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            raise KeyboardInterrupt

    def close(self) -> None:
        import cv2

        try:
            cv2.destroyAllWindows()
        except Exception:
            pass


def format_summary(summary: Dict[str, Any]) -> str:
    """A short table of frames, FPS and per-stage timings."""
    lines = [f"frames {summary['frames']}  wall {summary['wall_s']:.1f} s  pipeline {summary['fps']} FPS  "
             f"tracks {summary['tracks']}  identities {summary['identities']}",
             f"{'stage':<8} {'ms/frame':>9} {'FPS':>8}"]
    for name, st in summary["stages"].items():
        lines.append(f"{name:<8} {st['ms_per_frame']:>9.2f} {st['fps'] if st['fps'] is not None else '-':>8}")
    lines.append(f"embed: {summary['crops_embedded']} crops, {summary['ms_per_crop']} ms per crop "
                 f"({summary['embedder']['backend']} {summary['embedder']['precision']} on {summary['embedder']['device']})")
    for camera, st in summary.get("sources", {}).items():
        lines.append(f"source {camera}: {st['frames']} frames, {st['decode_failures']} undecodable, "
                     f"{st['reopens']} reopens, ended: {st['ended'] or 'stopped'}")
    return "\n".join(lines)


def save_summary(path: Path, summary: Dict[str, Any]) -> None:
    atomic_write_json(path, summary)
