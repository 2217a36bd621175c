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

This module gathers the public names: the source classes live in ``capture.py``, source strings
(kinds, parsing, opening) in ``source_specs.py``, the round-robin over cameras in ``multi_source.py``.
"""

from __future__ import annotations

from edge_reid.stream.capture import CaptureSource, FramePacket, IterableSource, Source, SourceStats
from edge_reid.stream.multi_source import MultiSource
from edge_reid.stream.source_specs import SOURCES, camera_source, file_source, gstreamer_available, gstreamer_source, \
    open_source, open_sources, parse_source, source_kind, url_source

__all__ = ["SOURCES", "CaptureSource", "FramePacket", "IterableSource", "MultiSource", "Source", "SourceStats",
           "camera_source", "file_source", "gstreamer_available", "gstreamer_source", "open_source", "open_sources",
           "parse_source", "source_kind", "url_source"]
