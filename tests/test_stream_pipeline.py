"""Pipeline track aggregation: when the person under a box changes (two people crossing, or one
leaving where another enters) each person's segment gets its own track and identity: the
appearance tracker refuses to carry the track on to someone who looks different; under ByteTrack
(boxes only) the pipeline splits the track by appearance. A track whose appearance stays put
is never split."""

from __future__ import annotations

import numpy as np
import pytest

from edge_reid.stream.detectors import build_detector
from edge_reid.stream.gallery import Gallery
from edge_reid.stream.pipeline import StreamConfig, StreamPipeline
from edge_reid.stream.sources import FramePacket
from test_stream_gallery import tiny_embedder


def _frames(n: int, switch_at: int):
    """A person-shaped block walking right; from ``switch_at`` on it is someone else (other clothes)."""
    rng = np.random.default_rng(2)
    background = rng.integers(50, 100, size=(240, 320, 3), dtype=np.uint8)
    for t in range(n):
        frame = background.copy()
        if t >= 3:
            x = 20 + 7 * t
            top, bottom = ((230, 40, 40), (40, 40, 230)) if t < switch_at else ((40, 230, 40), (230, 230, 40))
            frame[60:120, x:x + 40] = top
            frame[120:180, x:x + 40] = bottom
        yield frame


def _run(tmp_path, switch_at: int, tracker: str = "appearance"):
    emb = tiny_embedder(tmp_path / "tiny.onnx")
    gallery = Gallery(emb.meta, threshold=0.9)
    pipeline = StreamPipeline(emb, build_detector("background"), gallery,
                              StreamConfig(min_observations=2, min_quality=0.1, tracker_kind=tracker))
    per_frame = []
    for t, frame in enumerate(_frames(36, switch_at)):
        result = pipeline.process(FramePacket(frame=frame, camera_id="cam1", frame_index=t, timestamp=t / 10))
        per_frame.append([(b.track_id, b.identity) for b in result.boxes])
    return pipeline, gallery, per_frame


@pytest.mark.parametrize("tracker, splits", [("appearance", 0), ("bytetrack", 1)])
def test_a_track_that_switches_person_is_split_into_two_identities(tmp_path, tracker, splits):
    pipeline, gallery, per_frame = _run(tmp_path, switch_at=18, tracker=tracker)
    assert pipeline.splits == splits
    before = {b for boxes in per_frame[12:17] for b in boxes}
    after = {b for boxes in per_frame[26:36] for b in boxes}
    assert len(before) == 1 and len(after) == 1, (before, after)
    (track_a, ident_a), (track_b, ident_b) = before.pop(), after.pop()
    assert track_a != track_b and ident_a is not None and ident_b is not None and ident_a != ident_b
    assert len(gallery) == 2
    assert pipeline.summary(1.0)["track_splits"] == splits


@pytest.mark.parametrize("tracker", ["appearance", "bytetrack"])
def test_a_steady_track_is_not_split(tmp_path, tracker):
    pipeline, gallery, per_frame = _run(tmp_path, switch_at=10 ** 6, tracker=tracker)
    assert pipeline.splits == 0
    assert len({b.track_id for b in pipeline.tracks.values()}) == 1 and len(gallery) == 1
