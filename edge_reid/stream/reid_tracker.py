"""A per-camera tracker that associates by motion and appearance (the ``appearance`` tracker).

Per frame (all detections come with an embedding when their crop was big enough):

1. every track's Kalman filter (:mod:`.motion`) predicts its box;
2. confirmed and lost tracks are matched to the detections scored >= ``high`` by one Hungarian
   assignment on ``cost = (1 - IoU) * iou_weight + (1 - cosine) * (1 - iou_weight)``, the cosine
   between the detection's embedding and the track's appearance (an EMA of its clean crops).
   A pair is allowed when the detection lies within ``gate`` track heights of the predicted
   centre (the gate widens by ``gate_growth`` per frame the track was not seen, so a person
   hidden behind a pillar is found again) and, when both have embeddings, the cosine is at
   least ``min_cosine`` (a tracker never carries one id on to a person who looks different);
3. tracks still unmatched that were seen last frame take the low-scored detections by IoU
   (>= ``min_iou``), as in ByteTrack;
4. unmatched detections scored >= ``activation`` start tentative tracks, matched at the next
   frames by the same rules; a tentative track is confirmed after ``min_hits`` hits in a row
   and dropped at its first miss; a confirmed track unseen for ``lost_frames`` frames is removed.
   With ``confirm_clean`` a new track whose detection overlaps no other detection and has no
   lost track within its gate (someone walking in, not a person found again) is confirmed at
   once, so its first frame is reported (on ``hard`` 211 first frames were missing otherwise).

Undetected tracks coast (``coast_frames`` > 0, with a ``support`` function from the detector): a
confirmed track with at least ``coast_min_hits`` hits that no detection took this frame, unseen for
at most ``coast_frames`` frames, is reported at its Kalman prediction (``coasted``; the predicted
centre with the last detection's size) while the
foreground covers at least ``coast_support`` of the predicted box (parts outside the frame count as
background, so a person walking out stops coasting). That recovers the people the detector loses for
a few frames: merged with a neighbour into one box (the other person took it), behind a pillar, or
refused by the appearance gate because their crop holds two people. The ground truth is amodal, so
the predicted whole-body box is the right answer while the person is partly hidden.

A track's appearance only learns from crops that overlap no other detection (IoU < 0.05):
a crop with two people in it would pull it towards the other one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np

from edge_reid.stream.detectors.base import Detections
from edge_reid.stream.motion import BoxKalman, cxcywh_to_xyxy, iou_matrix

_INF = 1e6


@dataclass
class _Track:
    track_id: int
    kalman: BoxKalman
    feature: Optional[np.ndarray] = None
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    size: Optional[Tuple[float, float]] = None

    def learn(self, embedding: Optional[np.ndarray], momentum: float) -> None:
        if embedding is None:
            return
        unit = embedding / max(float(np.linalg.norm(embedding)), 1e-12)
        if self.feature is None:
            self.feature = unit
        else:
            f = momentum * self.feature + (1 - momentum) * unit
            self.feature = f / max(float(np.linalg.norm(f)), 1e-12)


class AppearanceTracker:
    """Motion + appearance tracker for one camera: ``update(detections, embeddings)`` ->
    [(track_id, detection_index)] for the confirmed tracks seen in this frame."""

    uses_embeddings = True
    coasts = True  # update() takes the detector's support function and fills ``coasted``

    def __init__(self, fps: float = 10.0, lost_frames: int = 30, activation: float = 0.45, high: float = 0.6,
                 min_iou: float = 0.2, min_hits: int = 2, iou_weight: float = 0.5, min_cosine: float = 0.55,
                 gate: float = 0.6, gate_growth: float = 0.15, max_gate: float = 2.5, momentum: float = 0.8,
                 confirm_clean: bool = True, coast_frames: int = 5, coast_support: float = 0.25,
                 coast_min_hits: int = 6, coast_size: bool = True, **_: float) -> None:
        scale = max(float(fps or 10.0), 1.0) / 10.0  # frame counts are given for 10 FPS
        self.lost_frames = max(1, int(round(lost_frames * scale)))
        self.activation, self.high, self.min_iou = float(activation), float(high), float(min_iou)
        self.min_hits, self.iou_weight, self.min_cosine = max(1, int(min_hits)), float(iou_weight), float(min_cosine)
        self.gate, self.gate_growth, self.max_gate = float(gate), float(gate_growth) / scale, float(max_gate)
        self.momentum, self.confirm_clean = float(momentum), bool(confirm_clean)
        self.coast_frames = max(0, int(round(coast_frames * scale)))
        self.coast_support, self.coast_min_hits = float(coast_support), int(coast_min_hits)
        self.coast_size = bool(coast_size)
        self.tracks: List[_Track] = []
        self.coasted: List[Tuple[int, np.ndarray]] = []  # (track id, predicted box) of the last update
        self._next_id = 0

    def update(self, detections: Detections, embeddings: Optional[List[Optional[np.ndarray]]] = None,
               support: Optional[Callable[[np.ndarray], Optional[float]]] = None) -> List[Tuple[int, int]]:
        """Associate this frame's detections; returns [(track id, detection index)] of the confirmed
        tracks seen. ``support(box)``: the detector's evidence for a person in ``box`` (see
        :meth:`Detector.support`); with it, undetected tracks coast (``self.coasted``)."""
        n = len(detections)
        embeddings = list(embeddings) if embeddings is not None else [None] * n
        boxes, scores = detections.boxes.reshape(-1, 4), detections.scores.reshape(-1)
        for t in self.tracks:
            t.kalman.predict()
        overlap = iou_matrix(boxes, boxes)
        np.fill_diagonal(overlap, 0.0)
        clean = [not len(overlap) or float(overlap[i].max(initial=0.0)) < 0.05 for i in range(n)]
        matched: List[Tuple[_Track, int]] = []
        high = [i for i in range(n) if scores[i] >= self.high]
        low = [i for i in range(n) if scores[i] < self.high]
        first = [t for t in self.tracks if t.confirmed]
        pairs, rest_tracks, rest_high = self._associate(first, high, boxes, embeddings, appearance=True)
        matched += pairs
        recent = [t for t in rest_tracks if t.misses == 0]
        pairs, _, _ = self._associate(recent, low, boxes, embeddings, appearance=False)
        matched += pairs
        tentative = [t for t in self.tracks if not t.confirmed]
        pairs, dead, rest_high = self._associate(tentative, rest_high, boxes, embeddings, appearance=True)
        matched += pairs
        seen = set()
        for t, i in matched:
            t.kalman.update(boxes[i])
            t.size = (float(boxes[i][2] - boxes[i][0]), float(boxes[i][3] - boxes[i][1]))
            t.hits, t.misses = t.hits + 1, 0
            t.confirmed = t.confirmed or t.hits >= self.min_hits
            t.learn(embeddings[i] if clean[i] else None, self.momentum)
            seen.add(id(t))
        keep = []
        for t in self.tracks:
            if id(t) not in seen:
                t.misses += 1
            if t.confirmed and t.misses <= self.lost_frames or not t.confirmed and t.misses == 0:
                keep.append(t)
        self.tracks = keep
        for i in rest_high:
            if scores[i] >= self.activation:
                at_once = self.confirm_clean and clean[i] and not self._lost_near(boxes[i])
                t = _Track(self._next_id, BoxKalman(boxes[i]), confirmed=self.min_hits <= 1 or at_once)
                self._next_id += 1
                t.learn(embeddings[i] if clean[i] else None, self.momentum)
                self.tracks.append(t)
                matched.append((t, i))
        self.coasted = self._coast(support) if support is not None and self.coast_frames else []
        return sorted((t.track_id, i) for t, i in matched if t.confirmed)

    def _coast(self, support: Callable[[np.ndarray], Optional[float]]) -> List[Tuple[int, np.ndarray]]:
        """(track id, predicted box) of the undetected confirmed tracks the foreground still supports."""
        out = []
        for t in self.tracks:
            if t.confirmed and 1 <= t.misses <= self.coast_frames and t.hits >= self.coast_min_hits:
                box = t.kalman.box()
                if self.coast_size and t.size is not None:  # the predicted centre, the last detected size
                    box = cxcywh_to_xyxy(np.r_[t.kalman.x[:2], t.size[:2]])
                evidence = support(box)
                if evidence is not None and evidence >= self.coast_support:
                    out.append((t.track_id, box))
        return out

    def _lost_near(self, box: np.ndarray) -> bool:
        """Whether a confirmed track not seen this frame is within its gate of ``box``'s centre."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        for t in self.tracks:
            if t.confirmed and t.misses > 0:
                tx, ty, h = t.kalman.centre_height()
                if np.hypot(tx - cx, ty - cy) <= min(self.max_gate, self.gate + self.gate_growth * t.misses) * h:
                    return True
        return False

    def _associate(self, tracks: List[_Track], dets: List[int], boxes: np.ndarray,
                   embeddings: List[Optional[np.ndarray]], appearance: bool
                   ) -> Tuple[List[Tuple[_Track, int]], List[_Track], List[int]]:
        """Hungarian matching of ``tracks`` to detection indices ``dets``; returns (pairs, unmatched
        tracks, unmatched detections)."""
        from scipy.optimize import linear_sum_assignment

        if not tracks or not dets:
            return [], list(tracks), list(dets)
        predicted = np.stack([t.kalman.box() for t in tracks])
        iou = iou_matrix(predicted, boxes[dets])
        cost = np.full(iou.shape, _INF)
        for r, t in enumerate(tracks):
            cx, cy, h = t.kalman.centre_height()
            radius = min(self.max_gate, self.gate + self.gate_growth * t.misses) * h
            for c, i in enumerate(dets):
                if not appearance:
                    if iou[r, c] >= self.min_iou:
                        cost[r, c] = 1.0 - iou[r, c]
                    continue
                bx, by = (boxes[i, 0] + boxes[i, 2]) / 2, (boxes[i, 1] + boxes[i, 3]) / 2
                near = iou[r, c] >= self.min_iou or np.hypot(bx - cx, by - cy) <= radius
                if not near:
                    continue
                e = embeddings[i]
                if t.feature is None or e is None:
                    cost[r, c] = (1.0 - iou[r, c]) if iou[r, c] >= self.min_iou else _INF
                    continue
                cos = float(t.feature @ e) / max(float(np.linalg.norm(e)), 1e-12)
                if cos >= self.min_cosine:
                    cost[r, c] = self.iou_weight * (1.0 - iou[r, c]) + (1.0 - self.iou_weight) * (1.0 - cos)
        rows, cols = linear_sum_assignment(cost)
        pairs = [(tracks[r], dets[c]) for r, c in zip(rows, cols) if cost[r, c] < _INF]
        used_t = {id(t) for t, _ in pairs}
        used_d = {i for _, i in pairs}
        return pairs, [t for t in tracks if id(t) not in used_t], [i for i in dets if i not in used_d]
