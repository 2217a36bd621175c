"""A synthetic multi-camera video: people walking through two or more static cameras.

Each person crosses one camera, then later crosses another, rendered with the same identity
model as the dataset (larger). Backgrounds are static per camera, so a background-subtraction
detector works. Writes one video per camera, ``ground_truth.jsonl`` (one JSON object per
visible person per frame: camera, frame, pid, box x1 y1 x2 y2, visible fraction) and a manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import cv2
import numpy as np

from edge_reid.data.synthetic.cameras import VIEWS, apply_lighting, make_camera, render_scene
from edge_reid.data.synthetic.dataset import GENERATOR_VERSION
from edge_reid.data.synthetic.identity import sample_identity
from edge_reid.data.synthetic.render import CROP_SIZE, draw_scaled, render_crop, scene_for
from edge_reid.data.synthetic.writer import staged_folder
from edge_reid.errors import InvalidInputError
from edge_reid.utils.atomic import atomic_write_json

VIDEO_MANIFEST = "synthetic_video.json"
FOURCC, SUFFIX = "mp4v", ".mp4"  # writes and reads back with opencv-python-headless


def _visits(seed: int, num_people: int, num_cams: int, frames: int) -> List[Dict[str, Any]]:
    """When and where each person walks: two crossings in two different cameras."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 5]))
    duration = max(10, int(frames * 0.38))
    gap = max(1, frames // 20)
    visits = []
    for i in range(num_people):
        first, second = (int(c) + 1 for c in rng.choice(num_cams, size=2, replace=False))
        start = int(rng.integers(0, max(1, frames - 2 * duration - gap) + 1))
        for j, cam in enumerate((first, second)):
            visits.append({
                "pid": i + 1, "cam": cam, "start": start + j * (duration + gap), "duration": duration,
                "rightwards": bool((i + j) % 2 == 0), "ground": float(rng.uniform(0.78, 0.97)),
            })
    return visits


def write_multicam_video(out_dir: Any, num_people: int = 4, num_cams: int = 2, seed: int = 0,
                         frames: int = 200, size: Tuple[int, int] = (640, 360), fps: int = 10) -> Path:
    """Render the videos (``cam<C>.mp4``), ground truth and manifest into ``out_dir``; return it.

    ``size`` is (width, height). People are about 100-160 px tall at 640 x 360.
    """
    if num_people < 1:
        raise InvalidInputError(f"The synthetic video needs at least 1 person, got {num_people}.")
    if num_cams < 2:
        raise InvalidInputError(f"The synthetic video needs at least 2 cameras, got {num_cams}.")
    if frames < 20:
        raise InvalidInputError(f"The synthetic video needs at least 20 frames per camera, got {frames}.")
    width, height = int(size[0]), int(size[1])
    if width < 160 or height < 120:
        raise InvalidInputError(f"The synthetic video frame must be at least 160 x 120, got {width} x {height}.")
    out = Path(out_dir).expanduser()
    visits = _visits(seed, num_people, num_cams, frames)
    idents = {p: sample_identity(seed, p) for p in range(1, num_people + 1)}
    scale = height / 360.0
    gt_lines: List[str] = []
    files = []
    with staged_folder(out, VIDEO_MANIFEST) as root:
        for cam_index in range(1, num_cams + 1):
            camera = make_camera(seed, cam_index)
            background = apply_lighting(render_scene(camera, height, width), camera)
            name = f"cam{cam_index}{SUFFIX}"
            writer = cv2.VideoWriter(str(root / name), cv2.VideoWriter_fourcc(*FOURCC), fps, (width, height))
            if not writer.isOpened():
                raise InvalidInputError(f"OpenCV cannot write {FOURCC} video here ({root / name}).")
            mine = [v for v in visits if v["cam"] == cam_index]
            try:
                for t in range(frames):
                    frame = background.copy()
                    present = sorted((v for v in mine if v["start"] <= t < v["start"] + v["duration"]),
                                     key=lambda v: v["ground"])
                    owners = np.zeros((height, width), np.int32)
                    boxes = {}
                    for v in present:
                        tall = int(round((100 + 60 * (v["ground"] - 0.78) / 0.19) * scale))
                        view = "right" if v["rightwards"] else "left"
                        person, alpha = draw_scaled(idents[v["pid"]], view, tall, phase=0.55 * t)
                        person = apply_lighting(person, camera)
                        ph, pw = alpha.shape
                        progress = (t - v["start"]) / max(1, v["duration"] - 1)
                        if not v["rightwards"]:
                            progress = 1.0 - progress
                        x = int(round(-pw + progress * (width + pw)))
                        y = int(round(v["ground"] * height)) - ph
                        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + pw), min(height, y + ph)
                        if x0 >= x1 or y0 >= y1:
                            continue
                        a = alpha[y0 - y:y1 - y, x0 - x:x1 - x]
                        af = a.astype(np.float32)[..., None] / 255.0
                        frame[y0:y1, x0:x1] = frame[y0:y1, x0:x1] * (1 - af) + person[y0 - y:y1 - y, x0 - x:x1 - x] * af
                        owners[y0:y1, x0:x1][a > 127] = v["pid"]
                        ys, xs = np.nonzero(a > 127)
                        if len(xs):
                            boxes[v["pid"]] = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1,
                                               y0 + int(ys.max()) + 1, int((alpha > 127).sum()))
                    for pid, (bx1, by1, bx2, by2, full) in sorted(boxes.items()):
                        visible = int((owners[by1:by2, bx1:bx2] == pid).sum())
                        gt_lines.append(json.dumps({"camera": cam_index, "frame": t, "pid": pid,
                                                    "box": [bx1, by1, bx2, by2],
                                                    "visible": round(visible / max(1, full), 3)}))
                    writer.write(cv2.cvtColor(np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
            files.append(name)
        (root / "ground_truth.jsonl").write_text("\n".join(gt_lines) + "\n")
        atomic_write_json(root / VIDEO_MANIFEST, {
            "generator": "edge_reid.data.synthetic.video",
            "generator_version": GENERATOR_VERSION,
            "params": {"num_people": num_people, "num_cams": num_cams, "seed": seed, "frames": frames,
                       "size": [width, height], "fps": fps},
            "videos": {str(c): f for c, f in zip(range(1, num_cams + 1), files)},
            "fourcc": FOURCC,
            "ground_truth": "ground_truth.jsonl",
            "ground_truth_format": "one JSON per line: camera (1-based), frame (0-based), pid, box [x1, y1, x2, y2] "
                                   "(person pixels inside the frame), visible (fraction not hidden by others or the frame edge)",
            "pids": list(range(1, num_people + 1)),
            "visits": visits,
        })
    return out


def enrolment_images(identity_ids: Sequence[int], seed: int = 0, n: int = 4,
                     size: Tuple[int, int] = CROP_SIZE) -> Dict[int, List[np.ndarray]]:
    """``n`` BGR uint8 crops (``size`` = (H, W)) of each walker of the video made with ``seed``.

    They are seen by enrolment cameras that are not in the video and from varied viewpoints,
    so a stream gallery enrolled with them must match across cameras.
    """
    if n < 1:
        raise InvalidInputError(f"Enrolment needs at least 1 image per identity, got {n}.")
    result: Dict[int, List[np.ndarray]] = {}
    cams = [make_camera(seed, 50 + k) for k in range(2)]
    scenes = [scene_for(c, size) for c in cams]
    for pid in identity_ids:
        ident = sample_identity(seed, int(pid))
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 6, int(pid)]))
        crops = []
        for k in range(n):
            cam = k % len(cams)
            img, _ = render_crop(ident, cams[cam], scenes[cam], rng, view=VIEWS[k % len(VIEWS)],
                                 occlusion=False, size=size)
            crops.append(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        result[int(pid)] = crops
    return result
