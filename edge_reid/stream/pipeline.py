"""The stream loop: frame -> detect -> embed (one batch) -> track (per camera) -> aggregate -> assign identities.

With the ``appearance`` tracker every detection tall enough is embedded before association
(the tracker matches by motion and appearance, :mod:`.reid_tracker`); with ``bytetrack`` the
tracked crops are embedded after it. Per track, the embeddings of crops that overlap no other
detection are aggregated as a quality-weighted mean, re-normalised; quality = ``confidence x
size x sharpness x edge``: size = min(1, crop height / 128 px), sharpness = min(1, variance of
the Laplacian / 100), edge = 0.3 when the box touches the frame border. After every frame the
live tracks are assigned identities by :class:`~.identities.IdentityAssigner` (per track,
one-to-one, with hysteresis; unmatched confident tracks become new identities; a finished track
with ``memory_observations`` crops adds its aggregate to its identity).

Under ByteTrack (boxes only) a track can pass from one person to another where two people cross
or one leaves where another enters, so the pipeline also keeps its own track ids: once a track
has ``split_min_observations`` interior crops, ``split_after`` interior crops in a row below
``split_similarity`` cosine to its aggregate split it (a new track, seeded with those crops).
The appearance tracker does not carry a track on to a different-looking person, so the split
rarely fires there.

With ``coast`` (default) the tracker gets the detector's foreground evidence (``Detector.support``)
and reports undetected established tracks at their prediction for a few frames
(:mod:`.reid_tracker`); the pipeline outputs those boxes with confidence ``COASTED_CONFIDENCE``
and learns nothing from them (no crop is embedded).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_reid.stream.crops import StageTimer, crop_quality
from edge_reid.stream.crops import int_box as _int_box
from edge_reid.stream.detectors.base import Detections, Detector
from edge_reid.stream.domain import centre_gallery
from edge_reid.stream.gallery import Gallery
from edge_reid.stream.identities import IdentityAssigner
from edge_reid.stream.sources import FramePacket, MultiSource
from edge_reid.stream.motion import iou_matrix
from edge_reid.stream.state import FrameResult, StreamConfig, TrackedBox, TrackState
from edge_reid.stream.tracker import MultiCameraTracker


#: The confidence reported for a box kept by the tracker's prediction (no detection this frame).
COASTED_CONFIDENCE = 0.3


class StreamPipeline:
    """Runs detector, trackers, embedder and gallery over frames from any number of cameras."""

    def __init__(self, embedder: Any, detector: Detector, gallery: Gallery,
                 config: Optional[StreamConfig] = None) -> None:
        self.embedder, self.detector, self.gallery = embedder, detector, gallery
        self.config = config or StreamConfig()
        self.trackers = MultiCameraTracker(self.config.tracker_kind, **self.config.tracker)
        cfg = self.config
        self.centring = centre_gallery(gallery, cfg.centring_min_count) if cfg.camera_centring else None
        self.assigner = IdentityAssigner(gallery, scope=cfg.identity_scope, stickiness=cfg.stickiness,
                                         switch_after=cfg.switch_after, min_observations=cfg.min_observations,
                                         min_quality=cfg.min_quality, new_identities=cfg.new_identities,
                                         memory_observations=cfg.memory_observations,
                                         centring=self.centring, memory_margin=cfg.memory_margin)
        self.tracks: Dict[Tuple[str, int], TrackState] = {}       # (camera, pipeline track id)
        self._live: Dict[Tuple[str, int], TrackState] = {}        # (camera, tracker id) -> segment
        self._next_track: Dict[str, int] = {}
        self._frames_seen: Dict[str, int] = {}
        self.splits = 0
        self.coasted = 0
        self.timer = StageTimer()
        self.frames = 0
        self.crops_embedded = 0
        self.embed_calls = 0

    def process(self, packet: FramePacket) -> FrameResult:
        """Detect, embed, track and match one frame (embed after tracking for a motion-only tracker)."""
        frame, camera_id = packet.frame, packet.camera_id
        t0 = time.perf_counter()
        detections = self.detector.detect(frame, camera_id)
        self.timer.add("detect", time.perf_counter() - t0)
        self.frames += 1
        h, w = frame.shape[:2]
        boxes = [_int_box(b, w, h) for b in detections.boxes]
        big = [y2 - y1 >= self.config.min_crop_height and x2 - x1 >= max(4.0, (y2 - y1) / self.config.max_crop_aspect)
               for x1, y1, x2, y2 in boxes]  # a sliver of a person at the frame edge is tracked, not embedded
        per_det: List[Optional[np.ndarray]] = [None] * len(detections)
        appearance = self.trackers.uses_embeddings
        count = self._frames_seen[camera_id] = self._frames_seen.get(camera_id, 0) + 1
        if appearance and (count - 1) % max(1, self.config.embed_interval) == 0:
            per_det = self._embed(frame, camera_id, boxes, [i for i in range(len(boxes)) if big[i]])
        t1 = time.perf_counter()
        support = (lambda box: self.detector.support(box, camera_id)) if self.config.coast else None
        pairs = self.trackers.update(camera_id, detections, per_det if appearance else None, support)
        coasted = self.trackers.coasted(camera_id) if self.config.coast else []
        self.timer.add("track", time.perf_counter() - t1)
        states: List[Tuple[TrackState, int]] = []
        for tracker_id, det_index in pairs:
            state = self._live.get((camera_id, tracker_id))
            if state is None:
                state = self._new_track(camera_id, tracker_id, packet.frame_index)
            state.last_frame = packet.frame_index
            state.seen += 1
            states.append((state, det_index))
        if not appearance:  # embed the tracked crops, every embed_interval-th frame of a track
            due = [i for state, i in states if big[i] and (state.seen - 1) % max(1, self.config.embed_interval) == 0]
            per_det = self._embed(frame, camera_id, boxes, due)
        t4 = time.perf_counter()
        overlap = iou_matrix(detections.boxes, detections.boxes)
        np.fill_diagonal(overlap, 0.0)
        for k, (state, det_index) in enumerate(states):
            emb = per_det[det_index]
            if emb is None or (len(overlap) and overlap[det_index].max() >= self.config.max_overlap):
                continue  # crops with another person in them do not teach the track's appearance
            x1, y1, x2, y2 = boxes[det_index]
            at_edge = x1 <= 1 or y1 <= 1 or x2 >= w - 1 or y2 >= h - 1
            quality = crop_quality(frame[y1:y2, x1:x2], float(detections.scores[det_index]), at_edge)
            states[k] = (self._observe(state, emb, quality, at_edge, packet.frame_index), det_index)
        self.assigner.update(camera_id, packet.frame_index, self.tracks.values())
        out = [self._reported(state, detections.boxes[det_index], float(detections.scores[det_index]))
               for state, det_index in states]
        for tracker_id, box in coasted:  # kept by prediction: reported, but nothing learnt from the box
            state = self._live.get((camera_id, tracker_id))
            if state is None:
                continue
            state.last_frame = packet.frame_index
            self.coasted += 1
            out.append(self._reported(state, np.clip(np.asarray(box[:4], np.float64), 0.0, [w, h, w, h]),
                                      COASTED_CONFIDENCE))
        self.timer.add("match", time.perf_counter() - t4)
        return FrameResult(packet, out)

    def _reported(self, state: TrackState, box: np.ndarray, confidence: float) -> TrackedBox:
        """What the frame reports of ``state`` at ``box``: its track, identity and score."""
        ident = self.gallery.identities.get(state.identity) if state.identity is not None else None
        return TrackedBox(state.track_id, tuple(float(v) for v in box), confidence, state.identity,
                          ident.name if ident else None, state.score)

    def _embed(self, frame: np.ndarray, camera_id: str, boxes: Sequence[Tuple[int, int, int, int]],
               which: Sequence[int]) -> List[Optional[np.ndarray]]:
        """Embeddings of the crops ``boxes[i]`` for ``i`` in ``which`` (one batch), None for the others."""
        out: List[Optional[np.ndarray]] = [None] * len(boxes)
        if not which:
            return out
        t = time.perf_counter()
        crops = [frame[boxes[i][1]:boxes[i][3], boxes[i][0]:boxes[i][2]] for i in which]
        embeddings = self.embedder.embed(crops, **self._embed_inputs(camera_id))  # one dynamic batch per frame
        self.crops_embedded += len(crops)
        self.embed_calls += 1
        for i, e in zip(which, embeddings):
            out[i] = np.asarray(e, np.float32)
        if self.centring is not None:
            self.centring.observe(camera_id, np.asarray(embeddings))
        self.timer.add("embed", time.perf_counter() - t)
        return out

    def _embed_inputs(self, camera_id: str) -> Dict[str, Optional[int]]:
        """The camera's extra model inputs: its modality (1 for ``--infrared`` cameras) and its
        camera index (``--camera-index``); the embedder feeds only those the model takes."""
        names = tuple(getattr(self.embedder.meta, "inputs", ()))
        out: Dict[str, Optional[int]] = {}
        if "modality" in names:
            out["modality"] = 1 if camera_id in self.config.infrared else 0
        if "camera_ids" in names:
            out["camera_ids"] = self.config.camera_index.get(camera_id)
        return out

    def _new_track(self, camera_id: str, tracker_id: int, frame_index: int) -> TrackState:
        track_id = self._next_track.get(camera_id, 0)
        self._next_track[camera_id] = track_id + 1
        state = TrackState(camera_id, track_id, frame_index, tracker_id=tracker_id, last_frame=frame_index)
        self.tracks[state.key] = self._live[(camera_id, tracker_id)] = state
        return state

    def _observe(self, state: TrackState, embedding: np.ndarray, quality: float, at_edge: bool = False,
                 frame_index: int = 0) -> TrackState:
        """Fold one embedding into its track and (re)match the track's aggregate; returns the track.

        An interior crop whose cosine to an established track's aggregate is below
        ``split_similarity`` is held back; ``split_after`` such crops in a row mean the tracker
        followed another person (two people crossing or one leaving where another enters): the
        track is split and a new segment, seeded with the held-back crops, continues it.
        """
        if quality <= 0:
            return state
        cfg = self.config
        aggregate = state.aggregate()
        if not at_edge and aggregate is not None and state.interior >= cfg.split_min_observations:
            unit = embedding.astype(np.float64) / max(float(np.linalg.norm(embedding)), 1e-12)
            if float(unit @ aggregate) < cfg.split_similarity:
                state.diverging.append((embedding, quality))
                if len(state.diverging) < cfg.split_after:
                    return state
                held, state.diverging = state.diverging, []
                new = self._new_track(state.camera_id, state.tracker_id, state.last_frame)
                new.seen, new.first_frame = len(held), frame_index
                self.splits += 1
                for emb, q in held:
                    self._fold(new, emb, q, False)
                return new
            state.diverging = []
        self._fold(state, embedding, quality, at_edge)
        return state

    def _fold(self, state: TrackState, embedding: np.ndarray, quality: float, at_edge: bool) -> None:
        if not at_edge:
            state.interior += 1
        vec = embedding.astype(np.float64) * quality
        state.vector_sum = vec if state.vector_sum is None else state.vector_sum + vec
        state.weight_sum += quality
        state.observations += 1
        if state.owns_identity and state.identity is not None:
            self.gallery.set_embeddings(state.identity, self.assigner.vector(state))

    def run(self, source: MultiSource, sinks: Sequence[Any] = (), max_frames: Optional[int] = None,
            on_frame: Optional[Callable[[FrameResult], None]] = None) -> Dict[str, Any]:
        """Process every frame of ``source`` (or ``max_frames``); returns the summary dict.

        ``sinks`` get ``write(result, fps)`` per frame and ``close()`` at the end, always.
        """
        start = time.perf_counter()
        fps_window: List[float] = []
        try:
            for packet in source:
                result = self.process(packet)
                now = time.perf_counter()
                fps_window = (fps_window + [now])[-20:]
                fps = (len(fps_window) - 1) / (fps_window[-1] - fps_window[0]) if len(fps_window) > 1 else 0.0
                t = time.perf_counter()
                for sink in sinks:
                    sink.write(result, fps)
                if on_frame is not None:
                    on_frame(result)
                self.timer.add("output", time.perf_counter() - t)
                if max_frames is not None and self.frames >= max_frames:
                    break
        finally:
            for sink in sinks:
                sink.close()
            source.close()
        self.timer.seconds["decode"] = source.decode_seconds
        return self.summary(time.perf_counter() - start, source)

    def summary(self, wall_s: float, source: Optional[MultiSource] = None) -> Dict[str, Any]:
        """Frames, overall FPS and per-stage milliseconds per frame and FPS."""
        stages = {}
        for name, seconds in self.timer.seconds.items():
            per_frame = seconds / max(self.frames, 1)
            stages[name] = {"total_s": round(seconds, 3), "ms_per_frame": round(per_frame * 1000.0, 2),
                            "fps": round(1.0 / per_frame, 1) if per_frame > 0 else None}
        return {
            "frames": self.frames, "wall_s": round(wall_s, 3),
            "fps": round(self.frames / wall_s, 2) if wall_s > 0 else None,
            "stages": stages,
            "crops_embedded": self.crops_embedded,
            "ms_per_crop": round(self.timer.seconds["embed"] * 1000.0 / max(self.crops_embedded, 1), 2),
            "tracks": len(self.tracks), "track_splits": self.splits,
            "coasted_boxes": self.coasted, "identities": len(self.gallery),
            "embedder": {"path": str(getattr(self.embedder, "path", "")), "backend": getattr(self.embedder, "backend", ""),
                         "precision": getattr(self.embedder, "precision", ""), "device": getattr(self.embedder, "device", "")},
            "gallery_search": self.gallery.search_backend,
            "sources": source.stats() if source is not None else {},
        }


def detections_of(result: FrameResult) -> Detections:
    """The tracked boxes of a frame as :class:`Detections` (for evaluation and tests)."""
    if not result.boxes:
        return Detections.empty()
    return Detections(np.array([b.box for b in result.boxes], np.float32),
                      np.array([b.confidence for b in result.boxes], np.float32))
