"""Frame sources: camera index, video file, RTSP/HTTP URL or GStreamer pipeline, one interface.

Every source is an iterator of :class:`FramePacket` ``(camera_id, frame_index, timestamp, frame)``
with ``frame`` a BGR uint8 image. Behaviour the pipeline relies on:

- a **file** ends cleanly at its end (a truncated file ends after a bounded run of failed reads);
- a **live** source (camera, URL, GStreamer) that drops is reopened with exponential backoff
  (``backoff_s`` doubling up to ``max_backoff_s``, at most ``max_reopens`` times in a row), then
  ends with a warning instead of hanging forever;
- a frame that fails to decode (empty or malformed) is skipped and counted in ``stats``.

Source strings (``--source``), optionally prefixed ``NAME=`` to name the camera:
``0`` (camera index), ``videos/cam1.mp4`` (file), ``rtsp://host/stream`` (URL), or a GStreamer
pipeline ending in ``appsink``, e.g. a Jetson CSI camera::

    nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 !
    nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1
"""

from __future__ import annotations

import abc
import logging
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.registry import Registry

log = logging.getLogger(__name__)

#: Source kinds by name: ``camera``, ``file``, ``url``, ``gstreamer``.
SOURCES: Registry = Registry("source")

_URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
_NAMED = re.compile(r"^([A-Za-z][\w.-]*)=(\S.*)$")


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


# ----------------------------------------------------------------------------- source kinds


def gstreamer_available() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines."""
    import cv2

    return bool(re.search(r"GStreamer:\s+YES", cv2.getBuildInformation()))


@SOURCES.register("camera")
def camera_source(spec: str, camera_id: str, **options: Any) -> Source:
    """A local camera by index (``0``, ``1``; V4L2 on Linux)."""
    return CaptureSource(int(spec), camera_id, live=True, **options)


@SOURCES.register("file")
def file_source(spec: str, camera_id: str, **options: Any) -> Source:
    """A video file; it ends cleanly at its end."""
    path = Path(spec).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"Video file {path} does not exist.")
    return CaptureSource(str(path), camera_id, live=False, **options)


@SOURCES.register("url")
def url_source(spec: str, camera_id: str, **options: Any) -> Source:
    """An RTSP/HTTP/RTMP stream through FFmpeg; reconnected when it drops."""
    import cv2

    return CaptureSource(spec, camera_id, live=True, api=cv2.CAP_FFMPEG, **options)


@SOURCES.register("gstreamer")
def gstreamer_source(spec: str, camera_id: str, **options: Any) -> Source:
    """A GStreamer pipeline ending in ``appsink`` (Jetson CSI: ``nvarguscamerasrc ...``)."""
    import cv2

    if not gstreamer_available():
        raise MissingDependencyError(
            "This OpenCV build has no GStreamer support, so GStreamer pipelines cannot be opened; "
            "use the OpenCV shipped with JetPack (or build OpenCV with -DWITH_GSTREAMER=ON).")
    return CaptureSource(spec, camera_id, live=True, api=cv2.CAP_GSTREAMER, **options)


def source_kind(spec: str) -> str:
    """Classify a source string: ``camera``, ``url``, ``gstreamer`` or ``file``."""
    text = spec.strip()
    if text.isdigit():
        return "camera"
    if text.lower().startswith(_URL_SCHEMES):
        return "url"
    if "!" in text:
        return "gstreamer"
    return "file"


def parse_source(spec: str, default_id: str) -> Tuple[str, str]:
    """``NAME=SPEC`` -> (NAME, SPEC); a bare SPEC gets ``default_id``."""
    match = _NAMED.match(spec.strip())
    if match and not Path(spec.strip()).expanduser().exists():
        return match.group(1), match.group(2).strip()
    return default_id, spec.strip()


def open_source(spec: str, camera_id: str, **options: Any) -> Source:
    """Open one source string as camera ``camera_id`` (kind chosen by :func:`source_kind`)."""
    return SOURCES.get(source_kind(spec))(spec, camera_id, **options)


def open_sources(specs: Sequence[str], **options: Any) -> List[Source]:
    """Open several source strings; unnamed ones become ``cam1``, ``cam2``, ... in order."""
    sources: List[Source] = []
    try:
        for i, spec in enumerate(specs, start=1):
            camera_id, target = parse_source(spec, f"cam{i}")
            if any(s.camera_id == camera_id for s in sources):
                raise InvalidInputError(f"Camera id '{camera_id}' is given twice; name sources as NAME=SOURCE.")
            sources.append(open_source(target, camera_id, **options))
    except BaseException:
        for source in sources:
            source.close()
        raise
    return sources


class MultiSource:
    """Round-robin over several sources: one frame from each live camera in turn.

    A source that ends is dropped; one that raises (a driver error, a camera unplugged in a
    way OpenCV reports by raising) is logged, counted in its ``stats.errors`` and dropped, so
    the other cameras keep going and the pipeline ends cleanly when all are done.
    """

    def __init__(self, sources: Sequence[Source]) -> None:
        if not sources:
            raise InvalidInputError("No video source was given.")
        self.sources = list(sources)
        self.decode_seconds = 0.0  # time spent inside sources producing frames

    def __iter__(self) -> Iterator[FramePacket]:
        active = [(s, iter(s)) for s in self.sources]
        while active:
            still = []
            for source, it in active:
                start = time.perf_counter()
                try:
                    packet = next(it)
                except StopIteration:
                    source.stats.ended = source.stats.ended or "ended"
                    continue
                except Exception as exc:  # a source failing must not kill the other cameras
                    source.stats.errors += 1
                    source.stats.ended = f"error: {type(exc).__name__}: {exc}"
                    log.warning("Camera %s failed (%s: %s); continuing without it.", source.camera_id,
                                type(exc).__name__, exc)
                    source.close()
                    continue
                finally:
                    self.decode_seconds += time.perf_counter() - start
                still.append((source, it))
                yield packet
            active = still

    def close(self) -> None:
        for source in self.sources:
            source.close()

    def stats(self) -> Dict[str, Dict[str, Any]]:
        return {s.camera_id: s.stats.to_dict() for s in self.sources}
