"""The background detector cuts a blob of people walking together into one box per person, and
leaves one person (and a wide short blob, a car) alone."""

from __future__ import annotations

import numpy as np

from edge_reid.stream.detectors import build_detector


def _run(paint, frames: int = 14):
    det = build_detector("background")
    rng = np.random.default_rng(0)
    background = rng.integers(60, 90, size=(240, 320, 3), dtype=np.uint8)
    out = None
    for t in range(frames):
        frame = background.copy()
        if t >= 8:
            paint(frame, t)
        out = det.detect(frame, "cam")
    return out


def test_two_people_side_by_side_become_two_boxes():
    def pair(frame, t):
        x = 60 + 5 * t
        frame[70:190, x:x + 40] = (30, 160, 220)        # 120 x 40 each, touching: one foreground blob
        frame[70:190, x + 40:x + 80] = (200, 60, 200)
    out = _run(pair)
    assert len(out) == 2, out
    widths = out.boxes[:, 2] - out.boxes[:, 0]
    assert np.all((30 <= widths) & (widths <= 50)) and np.all(np.abs(out.boxes[:, 1] - 70) <= 4)


def test_one_person_is_not_cut():
    out = _run(lambda frame, t: frame.__setitem__((slice(70, 190), slice(60 + 5 * t, 110 + 5 * t)), (30, 160, 220)))
    assert len(out) == 1


def test_the_cut_can_be_switched_off():
    det = build_detector("background", split_width=0)
    rng = np.random.default_rng(0)
    background = rng.integers(60, 90, size=(240, 320, 3), dtype=np.uint8)
    for t in range(14):
        frame = background.copy()
        if t >= 8:
            frame[70:190, 100:180] = (30, 160, 220)
        out = det.detect(frame, "cam")
    assert len(out) == 1


def test_a_person_cut_by_a_thin_pillar_is_one_box():
    def behind_pillar(frame, t):
        x = 40 + 5 * t
        frame[70:190, x:x + 44] = (30, 160, 220)
        frame[:, 150:158] = (75, 75, 75)  # a static pillar in front (same in every frame, so background)
    def pillar_only(frame):
        frame[:, 150:158] = (75, 75, 75)
    det = build_detector("background")
    det_off = build_detector("background", join_width=0)
    rng = np.random.default_rng(0)
    background = rng.integers(60, 90, size=(240, 320, 3), dtype=np.uint8)
    pillar_only(background)
    for t in range(20):
        frame = background.copy()
        if t >= 8:
            behind_pillar(frame, t)
        out, out_off = det.detect(frame, "cam"), det_off.detect(frame.copy(), "cam")
    assert 40 + 5 * 19 < 150 and 158 < 40 + 5 * 19 + 44  # the pillar crosses the person in the last frame
    assert len(out) == 1 and out.boxes[0, 2] - out.boxes[0, 0] >= 40, out
    assert len(out_off) != 1 or out_off.boxes[0, 2] - out_off.boxes[0, 0] < 40
