"""What ``edge-reid stream`` uses when no ``--model`` or ``--source`` is given.

The model: the artifact of the newest ``python export/build_engine.py`` run (engine first, else
ONNX). The sources: the synthetic multi-camera video, rendered once under ``cache_dir()/stream``,
with enrolment images of the same walkers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, List, Optional

from edge_reid.errors import InvalidInputError
from edge_reid.utils.paths import cache_dir

#: preference among a build's artifacts: engines first (GPU), then ONNX graphs (CPU)
ENGINE_ORDER = ("fp16", "int8_trt", "fp32")
ONNX_ORDER = ("fp32", "fp16", "int8_cpu")
SYNTHETIC_VIDEO = {"num_people": 4, "num_cams": 2, "seed": 0, "frames": 200, "size": (640, 360), "fps": 10}


def find_built_model(root: Optional[Path] = None) -> Path:
    """The artifact of the newest build under ``cache_dir()/builds`` (engine first, else ONNX)."""
    root = Path(root) if root is not None else cache_dir() / "builds"
    manifests = sorted(root.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for manifest in manifests:
        try:
            info = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        for table, order in ((info.get("engines") or {}, ENGINE_ORDER), (info.get("artifacts") or {}, ONNX_ORDER)):
            for key in order:
                if key in table and Path(table[key]).is_file():
                    return Path(table[key])
    raise InvalidInputError("No --model was given and no built model was found; run "
                            "'python export/build_engine.py' first (or pass --model ENGINE_OR_ONNX_OR_CHECKPOINT).")


def synthetic_video(say: Callable[[str], None] = print) -> Path:
    """The default synthetic multi-camera video with enrolment images, rendered on first use."""
    import cv2

    from edge_reid.data.synthetic import SCENE_GENERATOR_VERSION, enrolment_images, write_multicam_video
    from edge_reid.data.synthetic.video import VIDEO_MANIFEST

    folder = cache_dir() / "stream" / f"synthetic_video_v{SCENE_GENERATOR_VERSION}"
    if not (folder / VIDEO_MANIFEST).is_file():
        say(f"Rendering the synthetic multi-camera video into {folder} (once).")
        write_multicam_video(folder, **SYNTHETIC_VIDEO)
    enrol = folder / "enrol"
    if not enrol.is_dir():
        from edge_reid.utils.atomic import atomic_write

        pids = json.loads((folder / VIDEO_MANIFEST).read_text())["pids"]
        for pid, crops in enrolment_images(pids, seed=SYNTHETIC_VIDEO["seed"], n=4).items():
            for k, crop in enumerate(crops):
                ok, data = cv2.imencode(".png", crop)
                with atomic_write(enrol / f"person{pid}" / f"{k}.png") as handle:
                    handle.write(data.tobytes())
    return folder


def synthetic_sources(folder: Path) -> List[str]:
    """``camN=<video>`` source strings of a synthetic video folder."""
    from edge_reid.data.synthetic.video import VIDEO_MANIFEST

    videos = json.loads((folder / VIDEO_MANIFEST).read_text())["videos"]
    return [f"cam{c}={folder / name}" for c, name in sorted(videos.items(), key=lambda kv: int(kv[0]))]
