"""``edge-reid stream``: ReID on live cameras, video files, RTSP or GStreamer sources.

With no ``--source`` it plays the synthetic multi-camera video (rendered once under
``cache_dir()/stream``) with a gallery enrolled from the generator's enrolment images of the
same walkers; with no ``--model`` it uses the artifact of the newest ``python export/build_engine.py``
run (its ``manifest.json`` under ``cache_dir()/builds``): a TensorRT engine where one was built,
else the FP32 ONNX graph. Outputs go to ``--out``: ``events.jsonl``, ``annotated_<camera>.mp4``,
``summary.json``; the gallery is saved (atomically) to ``--gallery`` even when a source fails.
Flags are checked and ``--out`` / ``--gallery`` proved writable before anything is loaded, and
the gallery folder is locked for the whole run (a second writer is refused, naming the holder).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from edge_reid.errors import InvalidInputError
from edge_reid.utils.paths import cache_dir

#: preference among a build's artifacts: engines first (GPU), then ONNX graphs (CPU)
ENGINE_ORDER = ("fp16", "int8_trt", "fp32")
ONNX_ORDER = ("fp32", "fp16", "int8_cpu")
SYNTHETIC_VIDEO = {"num_people": 4, "num_cams": 2, "seed": 0, "frames": 200, "size": (640, 360), "fps": 10}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", default=[], metavar="[NAME=]SOURCE",
                        help="camera index, video file, rtsp:// or http:// URL, or a GStreamer pipeline ending in "
                             "appsink; repeat for several cameras (default: the synthetic multi-camera video)")
    parser.add_argument("--infrared", action="append", default=[], metavar="NAME",
                        help="the source NAME is an infrared camera: its crops take the model's infrared path "
                             "(modality 1; two-stream visible-infrared models); repeatable")
    parser.add_argument("--model", default=None,
                        help="embedder: TensorRT engine, ONNX model or checkpoint (default: the newest "
                             "'python export/build_engine.py' artifact)")
    parser.add_argument("--backend", default="auto", help="runtime backend: auto, onnxruntime, tensorrt or torch")
    parser.add_argument("--gallery", default=None, metavar="DIR",
                        help="gallery folder: a saved gallery, or DIR/<name>/*.jpg to enrol; saved back there")
    parser.add_argument("--threshold", type=float, default=None,
                        help="cosine similarity needed to match an identity (default: calibrated on the enrolment "
                             "images, see edge_reid/stream/calibration.py; 0.5 without them)")
    parser.add_argument("--detector", default="background", help="person detector: background, hog or onnx_yolo")
    parser.add_argument("--detector-model", default=None, help="YOLOv5/v8 ONNX file for --detector onnx_yolo")
    parser.add_argument("--out", default=None, help="output folder (default runs/stream-<time>)")
    parser.add_argument("--show", action="store_true", help="show annotated frames in a window (needs a display)")
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames (all cameras)")
    parser.add_argument("--embed-interval", type=int, default=1,
                        help="embed every N-th frame of a camera (the appearance tracker uses motion alone between)")
    parser.add_argument("--tracker", default=None,
                        help="per-camera tracker: appearance (default: motion + embeddings) or bytetrack (boxes only)")
    parser.add_argument("--overlapping-cameras", action="store_true",
                        help="cameras may see the same place: one identity may be in several cameras at once "
                             "(default: one place at a time, so concurrent tracks in different cameras get "
                             "different identities)")
    parser.add_argument("--camera-centring", action="store_true",
                        help="match each track minus its camera's running mean embedding and the gallery minus "
                             "its enrolment mean (camera-aware feature normalisation; off by default)")
    parser.add_argument("--no-new-identities", action="store_true",
                        help="only match the gallery; never create identities from unmatched tracks")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: default)")
    parser.add_argument("--eval", default=None, metavar="SCENE_OR_GT",
                        help="score the run with TrackEval (HOTA/IDF1/MOTA per camera, cross-camera IDF1) against a "
                             "scene (easy, default, hard, a scene YAML or folder; its videos play when no --source "
                             "is given) or a folder of MOTChallenge sequences named like the cameras; writes "
                             "metrics.json")
    parser.add_argument("--camera-index", action="append", default=[], metavar="NAME=INT",
                        help="the camera id a camera-aware model (e.g. FusionReID) gets for source NAME; "
                             "needed for every source when the model takes camera ids")
    parser.add_argument("--enrol-camera-index", type=int, default=None, metavar="INT",
                        help="the camera id a camera-aware model gets for the gallery folder's enrolment images")


# ----------------------------------------------------------------------------- defaults


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

    from edge_reid.data.synthetic import GENERATOR_VERSION, enrolment_images, write_multicam_video
    from edge_reid.data.synthetic.video import VIDEO_MANIFEST

    folder = cache_dir() / "stream" / f"synthetic_video_v{GENERATOR_VERSION}"
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


def parse_camera_index(items: Sequence[str]) -> Dict[str, int]:
    """``["lobby=0", "gate=3"]`` -> ``{"lobby": 0, "gate": 3}``; malformed or repeated names are an error."""
    mapping: Dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            index = int(value)
        except ValueError:
            index = -1
        if not sep or not name or index < 0:
            raise InvalidInputError(f"--camera-index takes NAME=INT with a non-negative integer, got '{item}'.")
        if name in mapping:
            raise InvalidInputError(f"--camera-index names source '{name}' twice.")
        mapping[name] = index
    return mapping


def check_camera_index(meta: Any, mapping: Dict[str, int], sources: Sequence[str]) -> None:
    """Every source of a camera-aware model needs a camera id in range; names must be sources."""
    unknown = sorted(set(mapping) - set(sources))
    if unknown:
        raise InvalidInputError(f"--camera-index names {', '.join(unknown)}, which are not sources "
                                f"(sources: {', '.join(sources)}).")
    if "camera_ids" not in tuple(meta.inputs):
        return
    cameras = int(meta.model_options.get("num_cameras", 0))
    missing = [name for name in sources if name not in mapping]
    if missing:
        raise InvalidInputError(f"Model '{meta.model}' embeds the camera: give --camera-index NAME=INT "
                                f"(0..{cameras - 1}) for {', '.join(missing)}.")
    bad = sorted(name for name, index in mapping.items() if cameras and index >= cameras)
    if bad:
        raise InvalidInputError(f"--camera-index for {', '.join(bad)} is out of range: model '{meta.model}' "
                                f"knows cameras 0..{cameras - 1}.")


def open_gallery(folder: Optional[Path], embedder: Any, threshold: Optional[float],
                 say: Callable[[str], None] = print, camera_id: Optional[int] = None) -> Any:
    """Load a saved gallery, enrol an image folder, or start an empty one."""
    from edge_reid.stream.calibration import open_set_threshold
    from edge_reid.stream.gallery import DEFAULT_THRESHOLD, Gallery, is_saved_gallery

    if folder is not None and is_saved_gallery(folder):
        gallery = Gallery.load(folder, embedder.meta, threshold)
        say(f"Loaded a gallery of {len(gallery)} identities from {folder}.")
        enrolled = {i.name for i in gallery.identities.values() if i.source == "enrolled"}
        added = gallery.enrol_folder(folder, embedder, skip=enrolled, require=False, camera_id=camera_id)
        if added:
            say(f"Enrolled {len(added)} identities from sub-folders added since the gallery was saved: "
                f"{', '.join(i.name for i in added)}.")
        return gallery
    gallery = Gallery(embedder.meta, DEFAULT_THRESHOLD if threshold is None else threshold)
    if folder is not None and folder.is_dir() and any(p.is_dir() for p in folder.iterdir()):
        if camera_id is None and "camera_ids" in tuple(embedder.meta.inputs):
            raise InvalidInputError(f"Model '{embedder.meta.model}' embeds the camera: give --enrol-camera-index INT "
                                    f"for the enrolment images in {folder}.")
        added = gallery.enrol_folder(folder, embedder, camera_id=camera_id)
        say(f"Enrolled {len(added)} identities from {folder}.")
        calibrated = open_set_threshold(gallery.vectors, gallery.owners) if threshold is None else None
        if calibrated is not None:
            gallery.threshold = calibrated
            say(f"Open-set threshold {calibrated:.3f}: the 5 % quantile of the enrolment images' leave-one-out "
                "scores against their own identity (--threshold sets one).")
    else:
        say("Starting with an empty gallery: identities are created from confident tracks.")
    return gallery


# ----------------------------------------------------------------------------- the run


def run_stream(sources: Sequence[Any], embedder: Any, detector: Any, gallery: Any, out: Path,
               gallery_dir: Optional[Path], config: Any = None, show: bool = False,
               max_frames: Optional[int] = None, say: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the pipeline over ``sources``; write events, videos and summary; always save the gallery."""
    from edge_reid.stream.events import AnnotatedVideo, EventLog, Window, display_available, format_summary, \
        save_summary
    from edge_reid.stream.pipeline import StreamConfig, StreamPipeline
    from edge_reid.stream.sources import MultiSource
    from edge_reid.utils.atomic import write_image

    config = config or StreamConfig()
    fps = next((s.fps for s in sources if getattr(s, "fps", 0)), 10.0)
    config.tracker.setdefault("fps", fps)
    pipeline = StreamPipeline(embedder, detector, gallery, config)
    out = Path(out)
    video = AnnotatedVideo(out, fps=fps)
    sinks: List[Any] = [EventLog(out / "events.jsonl"), video]
    if show:
        why_not = display_available()
        if why_not:
            say(why_not)
        else:
            sinks.append(Window())
    summary: Dict[str, Any] = {}
    try:
        summary = pipeline.run(MultiSource(sources), sinks, max_frames=max_frames)
    finally:
        if gallery_dir is not None:
            gallery.save(gallery_dir)
    for camera, image in video.last.items():
        write_image(out / f"last_{camera}.png", image)
    summary["identity_names"] = {str(i): ident.name for i, ident in gallery.identities.items()}
    summary["out"] = str(out)
    save_summary(out / "summary.json", summary)
    say(format_summary(summary))
    say(f"Events: {out / 'events.jsonl'}; videos and summary in {out}"
        + (f"; gallery saved to {gallery_dir}." if gallery_dir is not None else "."))
    return summary


def check_flags(args: argparse.Namespace) -> None:
    """Refuse out-of-range flags before anything is loaded (NaN would reach gallery.json)."""
    from edge_reid.stream.gallery_file import check_threshold

    if args.threshold is not None:
        check_threshold(args.threshold)
    if getattr(args, "tracker", None) is not None:
        from edge_reid.stream.tracker import TRACKERS

        TRACKERS.get(args.tracker)  # an unknown name: one sentence listing the known ones
    for flag, value, low in (("--embed-interval", args.embed_interval, 1), ("--max-frames", args.max_frames, 1),
                             ("--threads", args.threads, 0)):
        if value is not None and value < low:
            raise InvalidInputError(f"{flag} must be at least {low}; got {value}.")


def run(args: argparse.Namespace) -> int:
    from edge_reid.utils.lock import folder_lock
    from edge_reid.utils.paths import ensure_writable_dir

    check_flags(args)
    out = Path(args.out) if args.out else Path("runs") / f"stream-{time.strftime('%Y%m%d-%H%M%S')}"
    ensure_writable_dir(out, "--out")
    gallery_dir = Path(args.gallery).expanduser() if args.gallery else out / "gallery"
    ensure_writable_dir(gallery_dir, "--gallery")
    with folder_lock(gallery_dir, "The gallery folder"):
        return _run_locked(args, out, gallery_dir)


def _run_locked(args: argparse.Namespace, out: Path, gallery_dir: Path) -> int:
    from edge_reid.runtime import load_embedder
    from edge_reid.stream.detectors import build_detector
    from edge_reid.stream.pipeline import StreamConfig
    from edge_reid.stream.sources import open_sources

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    model = Path(args.model) if args.model else find_built_model()
    if not model.is_file():
        raise InvalidInputError(f"Model file {model} does not exist.")
    specs = list(args.source)
    enrol_from: Optional[Path] = None
    evaluation = None
    if args.eval:
        from edge_reid.stream.evaluate import plan_eval

        evaluation = plan_eval(args.eval, specs, args.max_frames)
        if not args.gallery:  # a scene's own enrolment images (never saved back into the scene)
            enrol_from = evaluation.enrol_folder
        specs = evaluation.specs
    if not specs:
        folder = synthetic_video()
        specs = synthetic_sources(folder)
        if not args.gallery:
            enrol_from = folder / "enrol"
        print(f"No --source given: playing the synthetic video in {folder}.")
    embedder = load_embedder(model, args.backend, threads=args.threads)
    print(f"Embedder: {embedder.meta.model} ({embedder.backend}, {embedder.precision}, {embedder.device}) from {model}.")
    detector = build_detector(args.detector, model=args.detector_model)
    camera_index = parse_camera_index(args.camera_index)
    gallery = open_gallery(enrol_from or gallery_dir, embedder, args.threshold, camera_id=args.enrol_camera_index)
    sources = open_sources(specs)
    names = {s.camera_id for s in sources}
    unknown = sorted(set(args.infrared) - names)
    if unknown:
        raise InvalidInputError(f"--infrared names {', '.join(unknown)}, which is not a source; the sources are "
                                f"{', '.join(sorted(names))} (name them with --source NAME=SOURCE).")
    if args.infrared and "modality" not in embedder.meta.inputs:
        print(f"Note: {embedder.meta.model} has one stream for every camera; --infrared changes nothing for it.")
    check_camera_index(embedder.meta, camera_index, [s.camera_id for s in sources])
    config = StreamConfig(embed_interval=args.embed_interval, new_identities=not args.no_new_identities,
                          infrared=set(args.infrared), camera_index=camera_index,
                          identity_scope="camera" if args.overlapping_cameras else "all",
                          tracker_kind=args.tracker or StreamConfig.tracker_kind,
                          camera_centring=args.camera_centring)
    summary = run_stream(sources, embedder, detector, gallery, out, gallery_dir, config, show=args.show,
                         max_frames=args.max_frames)
    if evaluation is not None:
        from edge_reid.stream.evaluate import finish_eval

        finish_eval(evaluation, out, summary, args.detector)
    return 0
