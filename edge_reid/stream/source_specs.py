"""Source strings (``--source [NAME=]SPEC``): their kinds (registry ``SOURCES``), parsing and opening."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, List, Sequence, Tuple

from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.registry import Registry
from edge_reid.stream.capture import CaptureSource, Source

#: Source kinds by name: ``camera``, ``file``, ``url``, ``gstreamer``.
SOURCES: Registry = Registry("source")

_URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
_NAMED = re.compile(r"^([A-Za-z][\w.-]*)=(\S.*)$")


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
