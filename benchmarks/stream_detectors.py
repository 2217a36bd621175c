"""The person detectors' trade-off on the synthetic scenes: detector + ByteTrack, scored per camera by TrackEval.

``python benchmarks/stream_detectors.py [--scenes easy default hard] [--detectors background hog]
[--detector-model yolo.onnx] [--out runs/stream_detectors]``. No embedder: the per-camera tracks
are the tracker's, so the numbers isolate the detector (and ByteTrack); the whole pipeline's
numbers, identities included, come from ``edge-reid stream --eval SCENE``. Writes
``detectors.csv``/``detectors.json`` and prints a Markdown table (HOTA, DetA, AssA, MOTA, IDF1
over all cameras; detector milliseconds per frame).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

from edge_reid.bench.report import markdown_table, write_csv, write_json
from edge_reid.evaluation.tracking import run_trackeval, write_predictions
from edge_reid.stream.detectors import build_detector
from edge_reid.stream.evaluate import render_scene, scene_sources
from edge_reid.stream.sources import MultiSource, open_sources
from edge_reid.stream.tracker import MultiCameraTracker

COLUMNS = ("scene", "detector", "HOTA", "DetA", "AssA", "MOTA", "IDF1", "FP", "FN", "IDSW", "detect_ms", "track_ms",
           "frames")


def measure(scene: str, detector_name: str, out: Path, **options: Any) -> Dict[str, Any]:
    """Run one detector with ByteTrack over one scene; TrackEval's combined per-camera metrics and timing."""
    folder = render_scene(scene, say=lambda s: None)
    sources = open_sources(scene_sources(folder))
    cameras = [s.camera_id for s in sources]
    detector = build_detector(detector_name, **options)
    trackers = MultiCameraTracker("bytetrack", fps=10.0)
    predictions, detect_s, track_s, frames = [], 0.0, 0.0, 0
    for packet in MultiSource(sources):
        t0 = time.perf_counter()
        found = detector.detect(packet.frame, packet.camera_id)
        t1 = time.perf_counter()
        pairs = trackers.update(packet.camera_id, found)
        track_s += time.perf_counter() - t1
        detect_s += t1 - t0
        frames += 1
        for track, k in pairs:
            predictions.append((packet.camera_id, packet.frame_index, track, None, found.boxes[k].tolist(),
                                float(found.scores[k])))
    work = out / f"{scene}-{detector_name}"
    write_predictions(work, cameras, predictions)
    combined = run_trackeval(folder / "mot", work, cameras)["COMBINED"]
    row = {"scene": scene, "detector": detector_name, "frames": frames,
           "detect_ms": round(1000 * detect_s / max(frames, 1), 1), "track_ms": round(1000 * track_s / max(frames, 1), 2)}
    row.update({k: round(100 * combined[k], 1) for k in ("HOTA", "DetA", "AssA", "MOTA", "IDF1")})
    row.update({k: int(combined[k]) for k in ("FP", "FN", "IDSW")})
    return row


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(prog="stream_detectors.py", description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=["easy", "default", "hard"])
    parser.add_argument("--detectors", nargs="+", default=["background", "hog"])
    parser.add_argument("--detector-model", default=None, help="YOLO ONNX export for the onnx_yolo detector")
    parser.add_argument("--out", default="runs/stream_detectors")
    args = parser.parse_args(argv)
    out = Path(args.out)
    rows = []
    for scene in args.scenes:
        for name in args.detectors:
            options = {"model": args.detector_model} if name == "onnx_yolo" else {}
            rows.append(measure(scene, name, out, **options))
            print(rows[-1], flush=True)
    write_csv(out / "detectors.csv", rows, COLUMNS)
    write_json(out / "detectors.json", rows)
    print(markdown_table(rows, COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
