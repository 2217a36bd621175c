"""Several cameras as one stream of frames, round-robin; a failing camera is dropped, not fatal."""

from __future__ import annotations

import time
from typing import Any, Dict, Iterator, Sequence

from edge_reid.errors import InvalidInputError
from edge_reid.stream.capture import FramePacket, Source, log


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
        """Close every source."""
        for source in self.sources:
            source.close()

    def stats(self) -> Dict[str, Dict[str, Any]]:
        """Each camera's counters, by camera id."""
        return {s.camera_id: s.stats.to_dict() for s in self.sources}
