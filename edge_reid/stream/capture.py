"""Frame source classes: :class:`FramePacket`, the :class:`Source` interface, OpenCV capture and iterables.

A file ends cleanly at its end (a truncated file after a bounded run of failed reads); a live
source that drops is reopened with exponential backoff, then ends with a warning; a frame that
fails to decode is skipped and counted in ``stats``. See :mod:`edge_reid.stream.sources`.
"""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, NamedTuple, Optional

import numpy as np

from edge_reid.errors import InvalidInputError

#: the one logger of every frame source (named as before the sources module was split)
log = logging.getLogger("edge_reid.stream.sources")


class FramePacket(NamedTuple):
    """One decoded frame: which camera, its index in that camera, when (seconds), the BGR image."""

    camera_id: str
    frame_index: int
    timestamp: float
    frame: np.ndarray


@dataclass
class SourceStats:
    """Counters a source keeps so that the summary can say what happened."""

    frames: int = 0
    decode_failures: int = 0
    reopens: int = 0
    errors: int = 0
    ended: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """The counters as a JSON-ready dict."""
        return asdict(self)


class Source(abc.ABC):
    """An iterator of :class:`FramePacket` from one camera; ``live`` sources reconnect."""

    live: bool = False

    def __init__(self, camera_id: str) -> None:
        self.camera_id = str(camera_id)
        self.stats = SourceStats()

    @abc.abstractmethod
    def __iter__(self) -> Iterator[FramePacket]:
        """Yield frames until the source ends."""

    def close(self) -> None:
        """Release the device or file (idempotent)."""


def _valid_frame(frame: Any) -> bool:
    return isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.size > 0 \
        and frame.dtype == np.uint8


class CaptureSource(Source):
    """A ``cv2.VideoCapture`` source (file, camera index, URL or GStreamer pipeline).

    ``max_failures``: consecutive failed reads that end a file or count as a dropped live
    source (then reopened after ``backoff_s``, doubling to ``max_backoff_s``, ``max_reopens``
    times at most before it ends). ``sleep`` is injectable so that tests need not wait.
    """

    def __init__(self, target: Any, camera_id: str, live: bool, api: Optional[int] = None,
                 max_failures: int = 10, backoff_s: float = 0.5, max_backoff_s: float = 8.0,
                 max_reopens: int = 6, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(camera_id)
        self.target, self.live, self.api = target, live, api
        self.max_failures, self.backoff_s, self.max_backoff_s = int(max_failures), float(backoff_s), float(max_backoff_s)
        self.max_reopens, self._sleep = int(max_reopens), sleep
        self._cap: Any = None
        self.fps = 0.0
        self._open_or_raise()

    def _open(self) -> bool:
        import cv2

        cap = cv2.VideoCapture(self.target) if self.api is None else cv2.VideoCapture(self.target, self.api)
        if not cap.isOpened():
            cap.release()
            return False
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 0.0
        return True

    def _open_or_raise(self) -> None:
        if not self._open():
            what = "video file" if not self.live else "camera/stream"
            raise InvalidInputError(f"Cannot open {what} '{self.target}' for camera '{self.camera_id}'.")

    def _reopen(self) -> bool:
        """Reconnect a dropped live source with exponential backoff; False when it gave up."""
        self.close()
        delay = self.backoff_s
        for attempt in range(1, self.max_reopens + 1):
            log.warning("Camera %s dropped; reopening in %.1f s (attempt %d/%d).", self.camera_id, delay, attempt,
                        self.max_reopens)
            self._sleep(delay)
            self.stats.reopens += 1
            if self._open():
                return True
            delay = min(delay * 2.0, self.max_backoff_s)
        return False

    def __iter__(self) -> Iterator[FramePacket]:
        index, failures = 0, 0
        start = time.time()
        while True:
            if self._cap is None:
                if not self.live or not self._reopen():
                    self.stats.ended = self.stats.ended or "gave up reconnecting"
                    return
            ok, frame = self._cap.read()
            if ok and _valid_frame(frame):
                failures = 0
                timestamp = index / self.fps if (not self.live and self.fps) else time.time() - start
                self.stats.frames += 1
                yield FramePacket(self.camera_id, index, float(timestamp), frame)
                index += 1
                continue
            failures += 1
            if ok:  # the container gave something that is not an image: skip it
                self.stats.decode_failures += 1
                index += 1
                if failures < self.max_failures:
                    continue
            if not self.live:
                if not ok and self._more_frames_expected(index) and failures < self.max_failures:
                    self.stats.decode_failures += 1  # a corrupt packet inside the file: skip it
                    index += 1
                    continue
                self.stats.ended = "end of file" if failures == 1 else "end of file (after unreadable frames)"
                self.close()
                return
            if failures >= self.max_failures:
                self.close()  # dropped: the next loop reopens with backoff

    def _more_frames_expected(self, index: int) -> bool:
        import cv2

        total = float(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self._cap is not None else 0
        return 0 < index < total - 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class IterableSource(Source):
    """Frames from any Python iterable of BGR images (a generator, a list); never reopened.

    Useful to feed frames from another library (a Jetson multimedia API, a test generator).
    """

    def __init__(self, frames: Iterable[np.ndarray], camera_id: str, fps: float = 0.0) -> None:
        super().__init__(camera_id)
        self._frames, self.fps = frames, float(fps)

    def __iter__(self) -> Iterator[FramePacket]:
        start = time.time()
        for index, frame in enumerate(self._frames):
            if not _valid_frame(frame):
                self.stats.decode_failures += 1
                continue
            self.stats.frames += 1
            stamp = index / self.fps if self.fps else time.time() - start
            yield FramePacket(self.camera_id, index, float(stamp), frame)
        self.stats.ended = "end of frames"
