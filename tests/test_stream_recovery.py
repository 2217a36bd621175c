"""Detection recovery in the stream: the background detector's foreground evidence for a box, the
appearance tracker coasting an undetected track while that evidence lasts, the pipeline reporting
it, and the detector keeping people it used to lose (a sliver at the frame edge, a person whose
mask falls in two stacked pieces) and still cutting two people side by side out of one blob."""

from __future__ import annotations

import numpy as np
import pytest

from edge_reid.stream.detectors import build_detector
from edge_reid.stream.detectors.base import Detections
from edge_reid.stream.gallery import Gallery
from edge_reid.stream.pipeline import COASTED_CONFIDENCE, StreamConfig, StreamPipeline
from edge_reid.stream.reid_tracker import AppearanceTracker
from edge_reid.stream.sources import FramePacket
from test_stream_gallery import tiny_embedder

H, W = 240, 320


def _background(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(60, 90, size=(H, W, 3), dtype=np.uint8)


def _settled(det, background: np.ndarray, camera: str = "cam1", frames: int = 8) -> None:
    for _ in range(frames):
        det.detect(background, camera)


# ----------------------------------------------------------------------------- detector


def test_background_support_is_the_foreground_fraction_of_the_box():
    det = build_detector("background")
    background = _background()
    assert det.support(np.array([0, 0, 10, 10]), "cam1") is None  # no frame yet
    _settled(det, background)
    frame = background.copy()
    frame[80:200, 100:140] = (30, 160, 220)
    det.detect(frame, "cam1")
    assert det.support(np.array([100, 80, 140, 200]), "cam1") > 0.9
    assert det.support(np.array([200, 80, 240, 200]), "cam1") == 0.0
    # a box twice as wide, half of it empty: about half the evidence
    assert 0.4 < det.support(np.array([100, 80, 180, 200]), "cam1") < 0.65
    # the part outside the frame counts as background
    frame = background.copy()
    frame[80:200, 0:20] = (30, 160, 220)
    det.detect(frame, "cam1")
    assert 0.4 < det.support(np.array([-20, 80, 20, 200]), "cam1") < 0.65
    assert det.support(np.array([400, 80, 440, 200]), "cam1") == 0.0
    assert build_detector("hog").support(np.array([0, 0, 10, 10])) is None  # no mask: no evidence


def test_a_person_walking_in_shows_a_sliver_that_is_kept():
    det = build_detector("background")
    background = _background(1)
    _settled(det, background)
    frame = background.copy()
    frame[60:180, 0:10] = (30, 160, 220)  # 10 x 120: the first columns of someone entering
    out = det.detect(frame, "cam1")
    assert len(out) == 1 and out.boxes[0][0] <= 1 and out.boxes[0][2] <= 14
    # the same sliver in the middle of the frame is no person
    det2 = build_detector("background")
    _settled(det2, background)
    frame = background.copy()
    frame[60:180, 150:160] = (30, 160, 220)
    assert len(det2.detect(frame, "cam1")) == 0


def test_a_mask_in_two_stacked_pieces_is_one_person():
    background = _background(2)
    frame = background.copy()
    frame[60:130, 100:140] = (30, 160, 220)   # head and torso
    frame[160:200, 104:136] = (200, 60, 60)   # legs; between them trousers the colour of the floor
    det = build_detector("background")
    _settled(det, background)
    out = det.detect(frame, "cam1")
    assert len(out) == 1
    x1, y1, x2, y2 = out.boxes[0]
    assert abs(y1 - 60) <= 4 and abs(y2 - 200) <= 4
    det_old = build_detector("background", stack_gap=0.25)  # the gap (30 px) is 0.43 x the torso
    _settled(det_old, background)
    old = det_old.detect(frame, "cam1")
    assert not (len(old) == 1 and abs(old.boxes[0][1] - 60) <= 4 and abs(old.boxes[0][3] - 200) <= 4)


def test_two_people_side_by_side_are_cut_apart():
    background = _background(3)
    frame = background.copy()
    frame[60:180, 100:138] = (30, 160, 220)   # two 38 x 120 people touching: one 76 x 120 blob
    frame[60:180, 138:176] = (200, 60, 60)
    det = build_detector("background")
    _settled(det, background)
    out = det.detect(frame, "cam1")
    assert len(out) == 2
    xs = sorted(float(b[0]) for b in out.boxes)
    assert abs(xs[0] - 100) <= 4 and abs(xs[1] - 138) <= 6


# ----------------------------------------------------------------------------- tracker


def _walk(tracker: AppearanceTracker, frames: int, support=None):
    emb = np.eye(8, dtype=np.float32)[0]
    out = []
    for t in range(frames):
        box = [100 + 8 * t, 100, 140 + 8 * t, 220]
        out.append(tracker.update(Detections(np.array([box], np.float32), np.array([0.9], np.float32)), [emb],
                                  support))
    return out


def test_an_undetected_track_coasts_while_the_foreground_supports_it():
    tracker = AppearanceTracker(fps=10)
    _walk(tracker, 10, support=lambda box: 0.6)
    tracker.update(Detections.empty(), [], lambda box: 0.0)
    assert tracker.coasted == []  # no foreground where it should be: not reported
    tracker = AppearanceTracker(fps=10)
    _walk(tracker, 10, support=lambda box: 0.6)
    centres = []
    for k in range(6):
        tracker.update(Detections.empty(), [], lambda box: 0.6)
        centres.append([(box[0] + box[2]) / 2 for _, box in tracker.coasted])
        for _, box in tracker.coasted:  # the size of the last detection, not the filter's drifting one
            assert box[2] - box[0] == pytest.approx(40) and box[3] - box[1] == pytest.approx(120)
    assert all(len(c) == 1 for c in centres[:5]) and centres[5:] == [[]]  # at most coast_frames (5)
    steps = np.diff([c[0] for c in centres[:5]])
    assert np.all(np.abs(steps - 8) < 2.5), steps  # it walks on at the track's speed


def test_a_coasted_box_keeps_the_last_detected_size():
    """The filter's size velocity would grow the box on (a person walking towards the camera
    and then half hidden); the coasted box keeps the last detection's size."""
    emb = np.eye(8, dtype=np.float32)[0]
    tracker = AppearanceTracker(fps=10)
    for t in range(10):
        box = [100 + 8 * t, 100, 140 + 8 * t, 200 + 4 * t]  # 4 px taller every frame
        tracker.update(Detections(np.array([box], np.float32), np.array([0.9], np.float32)), [emb],
                       lambda b: 0.6)
    for _ in range(3):
        tracker.update(Detections.empty(), [], lambda b: 0.6)
    (_, box), = tracker.coasted
    assert box[3] - box[1] == pytest.approx(136) and box[2] - box[0] == pytest.approx(40)
    free = AppearanceTracker(fps=10, coast_size=False)
    for t in range(10):
        box = [100 + 8 * t, 100, 140 + 8 * t, 200 + 4 * t]
        free.update(Detections(np.array([box], np.float32), np.array([0.9], np.float32)), [emb], lambda b: 0.6)
    for _ in range(3):
        free.update(Detections.empty(), [], lambda b: 0.6)
    (_, box), = free.coasted
    assert box[3] - box[1] > 140  # the filter alone lets it grow


def test_a_young_track_or_no_evidence_does_not_coast():
    tracker = AppearanceTracker(fps=10)
    _walk(tracker, 3, support=lambda box: 0.9)  # 3 hits < coast_min_hits (6)
    tracker.update(Detections.empty(), [], lambda box: 0.9)
    assert tracker.coasted == []
    tracker = AppearanceTracker(fps=10)
    _walk(tracker, 10)
    tracker.update(Detections.empty(), [])  # no support function: the detector has no evidence
    assert tracker.coasted == []
    tracker = AppearanceTracker(fps=10, coast_frames=0)
    _walk(tracker, 10, support=lambda box: 0.9)
    tracker.update(Detections.empty(), [], lambda box: 0.9)
    assert tracker.coasted == []


# ----------------------------------------------------------------------------- pipeline


def _turning_walker(n: int, thin: range):
    """A person-shaped block walking right; during ``thin`` it turns sideways (14 px wide: no
    person-shaped box, but its foreground is still there)."""
    background = _background(4)
    for t in range(n):
        frame = background.copy()
        if t >= 3:
            x = 20 + 7 * t
            if t in thin:
                frame[60:180, x + 13:x + 27] = (230, 40, 40)
            else:
                frame[60:120, x:x + 40] = (230, 40, 40)
                frame[120:180, x:x + 40] = (40, 40, 230)
        yield frame


@pytest.mark.parametrize("coast", [True, False])
def test_the_pipeline_reports_a_coasted_track_without_learning_from_it(tmp_path, coast):
    emb = tiny_embedder(tmp_path / "tiny.onnx")
    pipeline = StreamPipeline(emb, build_detector("background"), Gallery(emb.meta, threshold=0.9),
                              StreamConfig(min_observations=2, min_quality=0.1, coast=coast))
    thin = range(20, 23)
    per_frame = []
    for t, frame in enumerate(_turning_walker(30, thin)):
        before = pipeline.crops_embedded
        result = pipeline.process(FramePacket(frame=frame, camera_id="cam1", frame_index=t, timestamp=t / 10))
        per_frame.append((result.boxes, pipeline.crops_embedded - before))
    steady = {b.track_id for boxes, _ in per_frame[12:20] for b in boxes}
    assert len(steady) == 1
    for t in thin:
        boxes, embedded = per_frame[t]
        assert embedded == 0
        if coast:
            assert len(boxes) == 1 and boxes[0].track_id in steady
            assert boxes[0].confidence == pytest.approx(COASTED_CONFIDENCE)
            assert abs((boxes[0].box[0] + boxes[0].box[2]) / 2 - (40 + 7 * t)) < 6
        else:
            assert boxes == []
    assert {b.track_id for boxes, _ in per_frame[24:] for b in boxes} == steady
    assert pipeline.summary(1.0)["coasted_boxes"] == (len(thin) if coast else 0)


def test_a_sliver_at_the_frame_edge_is_tracked_but_not_embedded(tmp_path):
    emb = tiny_embedder(tmp_path / "tiny.onnx")
    pipeline = StreamPipeline(emb, build_detector("background"), Gallery(emb.meta, threshold=0.9),
                              StreamConfig(min_observations=2, min_quality=0.1))
    background = _background(5)
    for t in range(8):
        pipeline.process(FramePacket(frame=background, camera_id="cam1", frame_index=t, timestamp=t / 10))
    frame = background.copy()
    frame[60:180, 0:12] = (30, 160, 220)
    result = pipeline.process(FramePacket(frame=frame, camera_id="cam1", frame_index=8, timestamp=0.8))
    assert len(result.boxes) == 1 and pipeline.crops_embedded == 0
    frame = background.copy()
    frame[60:180, 0:40] = (30, 160, 220)
    pipeline.process(FramePacket(frame=frame, camera_id="cam1", frame_index=9, timestamp=0.9))
    assert pipeline.crops_embedded == 1
