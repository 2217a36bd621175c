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
import logging
import time
from pathlib import Path
from typing import Optional

from edge_reid.errors import InvalidInputError
from edge_reid.stream.arguments import add_arguments, check_flags
from edge_reid.stream.camera_index import check_camera_index, parse_camera_index
from edge_reid.stream.defaults import ENGINE_ORDER, ONNX_ORDER, SYNTHETIC_VIDEO, find_built_model, synthetic_sources, \
    synthetic_video
from edge_reid.stream.gallery_open import open_gallery
from edge_reid.stream.runner import run_stream

__all__ = ["ENGINE_ORDER", "ONNX_ORDER", "SYNTHETIC_VIDEO", "add_arguments", "check_camera_index", "check_flags",
           "find_built_model", "open_gallery", "parse_camera_index", "run", "run_stream", "synthetic_sources",
           "synthetic_video"]


def run(args: argparse.Namespace) -> int:
    """Check the flags, lock the gallery folder and run; 0 on success."""
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
    infrared = set(args.infrared)
    enrol_from: Optional[Path] = None
    evaluation = None
    if args.eval:
        from edge_reid.stream.evaluate import plan_eval

        evaluation = plan_eval(args.eval, specs, args.max_frames)
        if not args.gallery:  # a scene's own enrolment images (never saved back into the scene)
            enrol_from = evaluation.enrol_folder
        specs = evaluation.specs
        infrared |= set(evaluation.infrared)  # a scene's thermal cameras (those played)
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
    infrared &= names
    if unknown:
        raise InvalidInputError(f"--infrared names {', '.join(unknown)}, which is not a source; the sources are "
                                f"{', '.join(sorted(names))} (name them with --source NAME=SOURCE).")
    if infrared:
        print(f"Infrared camera(s) {', '.join(sorted(infrared))}: " + (
            "their crops take the model's infrared path." if "modality" in embedder.meta.inputs else
            f"{embedder.meta.model} has one stream for every camera, so they go through it like the visible ones."))
    check_camera_index(embedder.meta, camera_index, [s.camera_id for s in sources])
    config = StreamConfig(embed_interval=args.embed_interval, new_identities=not args.no_new_identities,
                          infrared=infrared, camera_index=camera_index,
                          identity_scope="camera" if args.overlapping_cameras else "all",
                          tracker_kind=args.tracker or StreamConfig.tracker_kind,
                          camera_centring=args.camera_centring)
    summary = run_stream(sources, embedder, detector, gallery, out, gallery_dir, config, show=args.show,
                         max_frames=args.max_frames)
    if evaluation is not None:
        from edge_reid.stream.evaluate import finish_eval

        finish_eval(evaluation, out, summary, args.detector)
    return 0
