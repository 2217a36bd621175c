"""ACCEPTANCE: on the synthetic multi-camera video every walker gets one identity across cameras
in at least 90% of its tracks, measured against the generator's ground truth (tracks are matched
to ground-truth people by box IoU >= 0.5, majority vote over the track's frames).

Embedder: the export pipeline's quick-trained VisNet checkpoint (``default_checkpoint()``, trained
once and cached), exported to ONNX and run with ONNX Runtime, the deployment path. An untrained
registry model cannot separate the walkers (every crop scores ~0.985 against every enrolment
image), so the gallery is enrolled from the generator's enrolment images of the same walkers.
Slow: it trains (once), renders the video and runs 400 frames on a 2-core CPU.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # trains the quick model once (minutes)


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter + 1e-9)


def identity_consistency(events_path: Path, gt_path: Path, min_frames: int = 5):
    """Per walker: the fraction of its tracks whose (majority) identity is the walker's majority identity."""
    gt = collections.defaultdict(list)
    for line in gt_path.read_text().splitlines():
        g = json.loads(line)
        gt[(f"cam{g['camera']}", g["frame"])].append(g)
    votes = collections.defaultdict(collections.Counter)
    idents = collections.defaultdict(collections.Counter)
    for line in events_path.read_text().splitlines():
        e = json.loads(line)
        key = (e["camera"], e["track"])
        best = max(gt.get((e["camera"], e["frame"]), []), key=lambda g: _iou(e["box"], g["box"]), default=None)
        if best is not None and _iou(e["box"], best["box"]) >= 0.5:
            votes[key][best["pid"]] += 1
        if e["identity"] is not None:
            idents[key][e["identity"]] += 1
    per_pid = collections.defaultdict(list)
    for key, counter in votes.items():
        pid, n = counter.most_common(1)[0]
        if n >= min_frames and idents[key]:
            per_pid[pid].append(idents[key].most_common(1)[0][0])
    result = {}
    for pid, ids in per_pid.items():
        top, count = collections.Counter(ids).most_common(1)[0]
        result[pid] = (top, count / len(ids), len(ids))
    return result


def test_every_walker_keeps_one_identity_across_cameras(tmp_path):
    from edge_reid.deploy.onnx_export import export_checkpoint
    from edge_reid.deploy.default_model import default_checkpoint
    from edge_reid.runtime import load_embedder
    from edge_reid.stream.command import open_gallery, run_stream, synthetic_sources, synthetic_video
    from edge_reid.stream.detectors import build_detector
    from edge_reid.stream.sources import open_sources

    onnx_path = export_checkpoint(default_checkpoint(lambda s: None), tmp_path / "embedder.onnx").path
    embedder = load_embedder(onnx_path, "onnxruntime")
    folder = synthetic_video(lambda s: None)
    gallery = open_gallery(folder / "enrol", embedder, None, say=lambda s: None)
    out = tmp_path / "out"
    summary = run_stream(open_sources(synthetic_sources(folder)), embedder, build_detector("background"), gallery,
                         out, tmp_path / "gallery", say=print)
    result = identity_consistency(out / "events.jsonl", folder / "ground_truth.jsonl")
    manifest = json.loads((folder / "synthetic_video.json").read_text())
    print("consistency per walker (identity, fraction of tracks, tracks):", result, "summary:", summary["stages"])
    assert set(result) == set(manifest["pids"]), "every walker must be tracked"
    assert all(frac >= 0.9 for _, frac, _ in result.values())
    assert len({ident for ident, _, _ in result.values()}) == len(result), "walkers must not share an identity"
