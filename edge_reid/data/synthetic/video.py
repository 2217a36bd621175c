"""A synthetic multi-camera video: people walking through two or more static cameras.

What happens is a :class:`~edge_reid.data.synthetic.scene.Scene` (named ``easy``, ``default``,
``hard`` or from YAML): people cross cameras (and come back), rendered with the same identity
model as the dataset (larger), in front of static backgrounds and behind static scenery, so a
background-subtraction detector works. Writes one video per camera, ``ground_truth.jsonl`` (one
JSON object per visible person per frame: camera, frame, pid, box x1 y1 x2 y2, visible fraction),
the same ground truth as MOTChallenge sequences (global person ids) and a manifest.
"""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from edge_reid.data.synthetic.cameras import VIEWS, Camera, apply_lighting, make_camera, muted_colour, render_scene
from edge_reid.data.synthetic.identity import LOOKALIKE_DETAILS, SCENE_PEOPLE, Identity, lookalike, sample_identity
from edge_reid.data.synthetic.infrared import finish_infrared, thermal_background, thermal_identity
from edge_reid.data.synthetic.mot import MOT_FOLDER, write_mot_ground_truth
from edge_reid.data.synthetic.render import CROP_SIZE, draw_scaled, render_crop, scene_for
from edge_reid.data.synthetic.scene import Scene, load_scene, plan_visits
from edge_reid.data.synthetic.writer import staged_folder
from edge_reid.errors import InvalidInputError
from edge_reid.utils.atomic import atomic_write_json

VIDEO_MANIFEST = "synthetic_video.json"
#: bump whenever a change alters the rendered scenes (part of their cache folder names).
#: 2: the people come from their own population (identity.SCENE_PEOPLE), not the datasets' ids.
SCENE_GENERATOR_VERSION = "2"
FOURCC, SUFFIX = "mp4v", ".mp4"  # writes and reads back with opencv-python-headless


def scene_identities(scene: Scene) -> Dict[int, Identity]:
    """Every person of ``scene``; person ``2k + 2`` of a look-alike pair copies ``2k + 1`` but one detail."""
    idents = {p: sample_identity(scene.seed, p, SCENE_PEOPLE) for p in range(1, scene.people + 1)}
    for k in range(scene.lookalike_pairs):
        a, b = 2 * k + 1, 2 * k + 2
        idents[b] = lookalike(idents[a], idents[b], LOOKALIKE_DETAILS[k % len(LOOKALIKE_DETAILS)])
    return idents


def scene_camera(scene: Scene, index: int) -> Camera:
    """Camera ``index`` of the scene, its colour cast scaled by ``scene.colour_cast``."""
    camera = make_camera(scene.seed, index)
    if scene.colour_cast == 1.0:
        return camera
    gains = tuple(float(max(0.3, 1.0 + (g - 1.0) * scene.colour_cast)) for g in camera.gains)
    return replace(camera, gains=gains)


def scenery(scene: Scene, index: int, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Static objects in front of the walkers (pillars, planters, bins): RGB float image and uint8 mask."""
    rng = np.random.default_rng(np.random.SeedSequence([int(scene.seed), 8, int(index)]))
    image = np.zeros((height, width, 3), np.float32)
    mask = np.zeros((height, width), np.uint8)
    for k in range(scene.occluders):
        colour = tuple(float(c) for c in muted_colour(rng, 0.1, 0.7, 0.4))
        if k % 2 == 0:  # pillar or lamp post
            w = int(rng.integers(width // 40, width // 18))
            x = int(rng.integers(width // 8, width - width // 8 - w))
            x1, y1, x2, y2 = x, int(height * rng.uniform(0.05, 0.3)), x + w, height
        else:  # planter, bin or bench in front of the legs
            w = int(rng.integers(width // 10, width // 5))
            x = int(rng.integers(0, width - w))
            y2 = int(height * rng.uniform(0.93, 1.0))
            x1, y1, x2 = x, y2 - int(height * rng.uniform(0.12, 0.2)), x + w
        cv2.rectangle(mask, (x1, y1), (x2, y2), 255, -1)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, -1)
        cv2.rectangle(image, (x1, y1), (x2, y2), tuple(c * 0.6 for c in colour), 2)
    return image, mask


def write_multicam_video(out_dir: Any, num_people: int = 4, num_cams: int = 2, seed: int = 0,
                         frames: int = 200, size: Tuple[int, int] = (640, 360), fps: int = 10) -> Path:
    """The original two-crossings video (scene ``easy`` with these numbers); see :func:`write_scene_video`."""
    scene = Scene(name="easy", people=num_people, cameras=num_cams, frames=frames, size=tuple(size), fps=fps,
                  seed=seed)
    return write_scene_video(out_dir, scene)


def write_scene_video(out_dir: Any, scene: Any) -> Path:
    """Render ``scene`` (a :class:`Scene`, name or YAML path): videos, ground truth, manifest; return the folder.

    Writes ``cam<C>.mp4``, ``ground_truth.jsonl`` and one MOTChallenge sequence per camera under
    ``mot/cam<C>/`` (see :mod:`edge_reid.data.synthetic.mot`). Boxes are amodal (the whole person,
    clipped to the frame); ``visible`` is the fraction not hidden by others, scenery or the frame edge.
    People are about 100-160 px tall at 640 x 360.
    """
    scene = load_scene(scene)
    width, height = int(scene.size[0]), int(scene.size[1])
    out = Path(out_dir).expanduser()
    visits = plan_visits(scene)
    idents = scene_identities(scene)
    thermal_idents = {pid: thermal_identity(ident) for pid, ident in idents.items()} if scene.infrared else {}
    scale = height / 360.0
    records: List[Dict[str, Any]] = []
    files = []
    with staged_folder(out, VIDEO_MANIFEST) as root:
        for cam_index in range(1, scene.cameras + 1):
            camera = scene_camera(scene, cam_index)
            thermal = cam_index in scene.infrared
            look = thermal_background if thermal else (lambda image: apply_lighting(image, camera))  # noqa: E731
            background = look(render_scene(camera, height, width))
            front, front_mask = scenery(scene, cam_index, height, width)
            front = look(front)
            front_alpha = front_mask.astype(np.float32)[..., None] / 255.0
            if scene.occluders:
                background = background * (1 - front_alpha) + front * front_alpha
            name = f"cam{cam_index}{SUFFIX}"
            writer = cv2.VideoWriter(str(root / name), cv2.VideoWriter_fourcc(*FOURCC), scene.fps, (width, height))
            if not writer.isOpened():
                raise InvalidInputError(f"OpenCV cannot write {FOURCC} video here ({root / name}).")
            mine = [v for v in visits if v["cam"] == cam_index]
            try:
                for t in range(scene.frames):
                    frame, boxes = _render_frame(background, None if thermal else camera, mine,
                                                 thermal_idents if thermal else idents, t, scale, width, height)
                    owners = boxes.pop("_owners")
                    if scene.occluders:
                        frame = frame * (1 - front_alpha) + front * front_alpha
                        owners[front_mask > 127] = 0
                    for pid, (bx1, by1, bx2, by2, full) in sorted(boxes.items()):
                        visible = int((owners[by1:by2, bx1:bx2] == pid).sum())
                        records.append({"camera": cam_index, "frame": t, "pid": pid, "box": [bx1, by1, bx2, by2],
                                        "visible": round(visible / max(1, full), 3)})
                    if thermal:  # one sensor (gain, blur) for the whole video, fresh grain per frame
                        pixels = finish_infrared(frame, camera, _frame_rng(scene.seed, cam_index, t),
                                                 _frame_rng(scene.seed, cam_index, -1))
                    else:
                        pixels = np.clip(frame * 255 + 0.5, 0, 255).astype(np.uint8)
                    writer.write(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
            files.append(name)
        (root / "ground_truth.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        write_mot_ground_truth(root / MOT_FOLDER, records, [f"cam{c}" for c in range(1, scene.cameras + 1)],
                               scene.frames, (width, height), scene.fps)
        atomic_write_json(root / VIDEO_MANIFEST, {
            "generator": "edge_reid.data.synthetic.video",
            "generator_version": SCENE_GENERATOR_VERSION,
            "scene": scene.to_dict(),
            "params": {"num_people": scene.people, "num_cams": scene.cameras, "seed": scene.seed,
                       "frames": scene.frames, "size": [width, height], "fps": scene.fps},
            "videos": {str(c): f for c, f in zip(range(1, scene.cameras + 1), files)},
            "fourcc": FOURCC,
            "ground_truth": "ground_truth.jsonl",
            "ground_truth_format": "one JSON per line: camera (1-based), frame (0-based), pid, box [x1, y1, x2, y2] "
                                   "(the whole person, clipped to the frame), visible (fraction not hidden by others, "
                                   "scenery or the frame edge)",
            "mot_ground_truth": MOT_FOLDER,
            "pids": list(range(1, scene.people + 1)),
            "lookalike_pairs": [[2 * k + 1, 2 * k + 2] for k in range(scene.lookalike_pairs)],
            "infrared": [f"cam{c}" for c in scene.infrared],
            "visits": visits,
        })
    return out


def _frame_rng(seed: int, cam_index: int, t: int) -> np.random.Generator:
    """The thermal sensor's generator of one frame (``t`` = -1: the video's fixed gain and blur)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 11, int(cam_index), int(t) + 1]))


def _render_frame(background: np.ndarray, camera: Optional[Camera], mine: Sequence[Dict[str, Any]],
                  idents: Dict[int, Identity], t: int, scale: float, width: int, height: int
                  ) -> Tuple[np.ndarray, Dict[Any, Any]]:
    """One frame of one camera (RGB float) and per pid (x1, y1, x2, y2, person pixels); ``_owners``: pixel owners.

    ``camera``: its lighting is applied to the people (None: a thermal camera, ``idents`` already thermal)."""
    frame = background.copy()
    present = sorted((v for v in mine if v["start"] <= t < v["start"] + v["duration"]), key=lambda v: v["ground"])
    owners = np.zeros((height, width), np.int32)
    boxes: Dict[Any, Any] = {}
    for v in present:
        tall = int(round((100 + 60 * (v["ground"] - 0.78) / 0.19) * scale))
        view = "right" if v["rightwards"] else "left"
        person, alpha = draw_scaled(idents[v["pid"]], view, tall, phase=0.55 * t)
        if camera is not None:
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
    boxes["_owners"] = owners
    return frame, boxes


def enrolment_images(identity_ids: Sequence[int], seed: int = 0, n: int = 4,
                     size: Tuple[int, int] = CROP_SIZE,
                     identities: Optional[Dict[int, Identity]] = None) -> Dict[int, List[np.ndarray]]:
    """``n`` BGR uint8 crops (``size`` = (H, W)) of each walker of the video made with ``seed``.

    They are seen by enrolment cameras that are not in the video and from varied viewpoints,
    so a stream gallery enrolled with them must match across cameras. ``identities`` (from
    :func:`scene_identities`) is needed for scenes with look-alike pairs.
    """
    if n < 1:
        raise InvalidInputError(f"Enrolment needs at least 1 image per identity, got {n}.")
    result: Dict[int, List[np.ndarray]] = {}
    cams = [make_camera(seed, 50 + k) for k in range(2)]
    scenes = [scene_for(c, size) for c in cams]
    for pid in identity_ids:
        ident = identities[int(pid)] if identities else sample_identity(seed, int(pid), SCENE_PEOPLE)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 6, int(pid)]))
        crops = []
        for k in range(n):
            cam = k % len(cams)
            img, _ = render_crop(ident, cams[cam], scenes[cam], rng, view=VIEWS[k % len(VIEWS)],
                                 occlusion=False, size=size)
            crops.append(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        result[int(pid)] = crops
    return result
