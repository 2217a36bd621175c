"""The flags of ``edge-reid stream`` and their checks before anything is loaded."""

from __future__ import annotations

import argparse

from edge_reid.errors import InvalidInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``edge-reid stream`` flags to ``parser``."""
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
