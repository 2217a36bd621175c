"""ACCEPTANCE: ``edge-reid stream --eval default`` end to end, scored by TrackEval.

The quick-trained VisNet (``default_checkpoint()``, trained once and cached) exported to ONNX
and quantized to INT8 (CPU flavour, calibrated on the synthetic training split), run with ONNX
Runtime; the ``default`` scene (12 people, 4 cameras, 300 frames, 2 look-alike pairs, scenery,
re-entries) rendered once; background-subtraction detector. ``EDGE_REID_TEST_EMBEDDER`` names
another embedder file to use instead. The floors come from the measurement of the pipeline with
the appearance tracker, per-track one-to-one identity assignment and the calibrated open-set
threshold (issue 19's second round) and the detection recovery (coasting, edge slivers, stacked
pieces; fourth round), on the scene generator's version 2 (its people are not the synthetic
dataset's, so the embedder has never seen them), with the main job's ``model_int8_cpu.onnx``
(2-core CPU): cross-camera IDF1 0.769, per-camera HOTA 0.591-0.741, MOTA 0.808-0.976 (README,
"Camera streams measured like a tracker"). With the sixth round's identity settings (stickiness
0.2, 20 crops for a new identity) the same embedder measures cross-camera IDF1 0.905 and the
stream embedder of ``train/configs/visnet_synthetic_stream.yaml`` (trained on look-alikes) 0.854,
HOTA 0.61-0.74; the IDF1 floor stays at the fifth round's level because the same settings average
0.809 over seeds 0-5 of the scene description and a retrained embedder moves it by about 0.03.
The floors sit a little below the fifth-round measurement; they are quality floors, not speed
limits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

#: measured: see the module docstring; floors a little below the measurement
FLOORS = {"cross_camera_IDF1": 0.74, "per_camera_HOTA": 0.56, "per_camera_MOTA": 0.77}


def _embedder(tmp_path: Path) -> Path:
    """$EDGE_REID_TEST_EMBEDDER, else the quick VisNet exported to ONNX and quantized to INT8 (CPU flavour)."""
    if os.environ.get("EDGE_REID_TEST_EMBEDDER"):
        return Path(os.environ["EDGE_REID_TEST_EMBEDDER"])
    from edge_reid.deploy.int8 import calibration_from_split, quantize_int8
    from edge_reid.deploy.onnx_export import export_checkpoint
    from edge_reid.deploy.default_model import default_checkpoint

    exported = export_checkpoint(default_checkpoint(lambda s: None), tmp_path / "embedder.onnx")
    calibration = calibration_from_split("synthetic", tuple(exported.meta.input_size), "train", limit=128)
    return quantize_int8(exported.path, calibration, tmp_path, flavours=["cpu"])["cpu"]


def test_default_scene_end_to_end_metrics_above_floor(tmp_path):
    pytest.importorskip("trackeval", reason="tracking metrics need TrackEval ('pip install trackeval')")
    from edge_reid.cli import main

    int8 = _embedder(tmp_path)
    out = tmp_path / "out"
    assert main(["stream", "--eval", "default", "--model", str(int8), "--backend", "onnxruntime",
                 "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    metrics = report["metrics"]
    print(json.dumps({k: report[k] for k in ("fps_per_camera", "ms_per_frame")}), json.dumps(metrics))
    assert report["frames"] == {f"cam{c}": 300 for c in range(1, 5)}
    assert sorted(metrics["per_camera"]) == ["cam1", "cam2", "cam3", "cam4"]
    assert metrics["cross_camera"]["IDF1"] >= FLOORS["cross_camera_IDF1"]
    for camera, row in metrics["per_camera"].items():
        assert row["HOTA"] >= FLOORS["per_camera_HOTA"], camera
        assert row["MOTA"] >= FLOORS["per_camera_MOTA"], camera
