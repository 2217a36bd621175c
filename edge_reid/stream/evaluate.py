"""``edge-reid stream --eval SCENE_OR_GT``: run the stream on a scene and score it like a tracker.

``SCENE_OR_GT`` is a named synthetic scene (``easy``, ``default``, ``hard``), a scene YAML file
(rendered once under ``cache_dir()/scenes``), a rendered scene folder, or a folder of
MOTChallenge sequences named like the cameras (``<camera>/gt/gt.txt`` + ``seqinfo.ini``).
With a scene and no ``--source`` its videos are played (``--source camN=...`` plays a subset of
its cameras, scored on those) and, without ``--gallery``, the gallery is enrolled from the
scene's enrolment images (visible); the scene's thermal cameras are streamed as
``--infrared``. After the run, the events become per-camera
tracker files and TrackEval computes the metrics (:mod:`edge_reid.evaluation.tracking`);
``metrics.json`` (metrics, per-stage timing, frames per second per camera) and a table follow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from edge_reid.errors import InvalidInputError
from edge_reid.utils.paths import cache_dir

MANIFEST = "synthetic_video.json"


@dataclass
class EvalPlan:
    """What ``--eval`` resolved to: the ground truth, and for a scene its videos and enrolment folder."""

    target: str
    gt_folder: Path
    scene_folder: Optional[Path] = None
    specs: List[str] = field(default_factory=list)

    @property
    def infrared(self) -> List[str]:
        """The scene's thermal cameras (its manifest's ``infrared``): their crops take the infrared path."""
        if self.scene_folder is None:
            return []
        return list(json.loads((self.scene_folder / MANIFEST).read_text()).get("infrared", []))

    @property
    def enrol_folder(self) -> Optional[Path]:
        return self.scene_folder / "enrol" if self.scene_folder is not None else None


def render_scene(name_or_yaml: str, say: Callable[[str], None] = print) -> Path:
    """The rendered folder of a named or YAML scene (rendered with enrolment images on first use)."""
    from edge_reid.data.synthetic import SCENE_GENERATOR_VERSION, load_scene, write_scene_video

    scene = load_scene(name_or_yaml)
    folder = cache_dir() / "scenes" / f"{scene.name}-v{SCENE_GENERATOR_VERSION}-{scene.key()}"
    if not (folder / MANIFEST).is_file():
        say(f"Rendering scene '{scene.name}' ({scene.people} people, {scene.cameras} cameras, "
            f"{scene.frames} frames) into {folder} (once).")
        write_scene_video(folder, scene)
    if not (folder / "enrol").is_dir():
        write_enrolment(folder, scene)
    return folder


def write_enrolment(folder: Path, scene: Any, n: int = 4) -> None:
    """``folder/enrol/person<pid>/<k>.png``: enrolment crops of every person of ``scene``."""
    import cv2

    from edge_reid.data.synthetic import enrolment_images, scene_identities
    from edge_reid.utils.atomic import atomic_write

    idents = scene_identities(scene)
    for pid, crops in enrolment_images(sorted(idents), seed=scene.seed, n=n, identities=idents).items():
        for k, crop in enumerate(crops):
            ok, data = cv2.imencode(".png", crop)
            with atomic_write(folder / "enrol" / f"person{pid}" / f"{k}.png") as handle:
                handle.write(data.tobytes())


def scene_sources(folder: Path) -> List[str]:
    """``camN=<video>`` source strings of a rendered scene folder."""
    videos = json.loads((folder / MANIFEST).read_text())["videos"]
    return [f"cam{c}={folder / name}" for c, name in sorted(videos.items(), key=lambda kv: int(kv[0]))]


def plan_eval(target: str, specs: Sequence[str], max_frames: Optional[int],
              say: Callable[[str], None] = print) -> EvalPlan:
    """Resolve ``--eval``; check the camera names and frame counts of file sources before the run."""
    from edge_reid.data.synthetic import SCENES
    from edge_reid.evaluation.tracking import check_match, read_sequences

    if max_frames is not None:
        raise InvalidInputError("--eval scores whole videos; drop --max-frames.")
    path = Path(target).expanduser()
    if target in SCENES or (path.suffix.lower() in (".yaml", ".yml") and path.is_file()):
        scene_folder: Optional[Path] = render_scene(target, say)
    elif path.is_dir():
        scene_folder = path if (path / MANIFEST).is_file() else None
    else:
        raise InvalidInputError(f"--eval '{target}' is neither a scene ({', '.join(SCENES.names())}), "
                                "a scene YAML file, nor a ground-truth folder.")
    gt = scene_folder / "mot" if scene_folder is not None else path
    plan = EvalPlan(target, gt, scene_folder, list(specs))
    if not plan.specs:
        if scene_folder is None:
            raise InvalidInputError("--eval with a ground-truth folder needs the videos: pass --source NAME=VIDEO "
                                    "for every camera.")
        plan.specs = scene_sources(scene_folder)
    check_match(read_sequences(gt), file_frames(plan.specs))
    return plan


def file_frames(specs: Sequence[str]) -> Dict[str, Optional[int]]:
    """Camera -> frame count of each source (the container's count for files, None when unknown)."""
    import cv2

    from edge_reid.stream.sources import parse_source, source_kind

    frames: Dict[str, Optional[int]] = {}
    for i, spec in enumerate(specs, start=1):
        camera, target = parse_source(spec, f"cam{i}")
        frames[camera] = None
        if source_kind(target) == "file" and Path(target).expanduser().is_file():
            cap = cv2.VideoCapture(str(Path(target).expanduser()))
            frames[camera] = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
            cap.release()
    return frames


def finish_eval(plan: EvalPlan, out: Path, summary: Dict[str, Any], detector: str,
                say: Callable[[str], None] = print) -> Dict[str, Any]:
    """Score the run's events against the ground truth; write ``metrics.json``; print the table."""
    from edge_reid.evaluation.tracking import evaluate_tracking, format_metrics
    from edge_reid.utils.atomic import atomic_write_json

    frames = {camera: int(stats.get("frames", 0)) for camera, stats in summary.get("sources", {}).items()}
    predictions = []
    events = out / "events.jsonl"
    for line in events.read_text().splitlines() if events.is_file() else []:
        e = json.loads(line)
        predictions.append((e["camera"], int(e["frame"]), int(e["track"]), e["identity"], e["box"],
                            float(e["confidence"])))
    metrics = evaluate_tracking(plan.gt_folder, predictions, frames, out / "eval")
    fps = summary.get("fps") or 0.0
    report = {
        "eval": plan.target, "ground_truth": str(plan.gt_folder), "detector": detector,
        "embedder": summary.get("embedder", {}), "frames": frames,
        "fps_all_cameras": fps, "fps_per_camera": round(fps / max(1, len(frames)), 2),
        "ms_per_frame": {k: v["ms_per_frame"] for k, v in summary.get("stages", {}).items()},
        "identities": summary.get("identities"), "tracks": summary.get("tracks"),
        "metrics": metrics,
    }
    atomic_write_json(out / "metrics.json", report)
    say(format_metrics(metrics))
    stages = ", ".join(f"{k} {v:.1f}" for k, v in report["ms_per_frame"].items())
    say(f"Per frame (ms): {stages}; {report['fps_per_camera']} frames per second per camera over "
        f"{len(frames)} cameras. Metrics (TrackEval) in {out / 'metrics.json'}.")
    return report
