"""``edge-reid synth``: write the synthetic dataset (Market-1501 layout) or the multi-camera video."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edge_reid.errors import InvalidInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (new, empty or an earlier synthetic one)")
    parser.add_argument("--video", action="store_true", help="write the multi-camera video instead of the dataset")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument("--cams", type=int, default=None, help="cameras (dataset default 6, video default 2)")
    parser.add_argument("--ids", type=int, default=200, help="dataset: identities (half train, half test)")
    parser.add_argument("--images-per-cam", type=int, default=4, help="dataset: images per identity per camera")
    parser.add_argument("--vi", choices=("sysu", "regdb"), default=None,
                        help="write the visible-infrared set in the SYSU-MM01 or RegDB layout instead")
    parser.add_argument("--people", type=int, default=4, help="video: people walking")
    parser.add_argument("--frames", type=int, default=200, help="video: frames per camera")
    parser.add_argument("--fps", type=int, default=10, help="video: frames per second")
    parser.add_argument("--scene", default=None, metavar="NAME_OR_YAML",
                        help="video: a named scene (easy, default, hard) or a scene YAML file; overrides "
                             "--people/--cams/--frames/--fps/--seed")


def run(args: argparse.Namespace) -> int:
    """Generate what was asked and print a summary of it."""
    out = Path(args.out)
    start = time.perf_counter()
    if args.video:
        from edge_reid.data.synthetic.scene import Scene, load_scene
        from edge_reid.data.synthetic.video import write_scene_video

        cams = 2 if args.cams is None else args.cams
        scene = load_scene(args.scene) if args.scene else Scene(
            people=args.people, cameras=cams, frames=args.frames, fps=args.fps, seed=args.seed)
        root = write_scene_video(out, scene)
        lines = (root / "ground_truth.jsonl").read_text().splitlines()
        print(f"Wrote scene '{scene.name}': {scene.cameras} camera videos of {scene.frames} frames with "
              f"{scene.people} people to {root} ({len(lines)} ground-truth boxes; MOTChallenge sequences in "
              f"{root / 'mot'}) in {time.perf_counter() - start:.1f} s.")
        for path in sorted(root.iterdir()):
            print(f"  {path.name}")
        return 0
    if args.vi is not None:
        return _run_vi(args, out, start)
    from edge_reid.data.datasets.market1501 import Market1501
    from edge_reid.data.synthetic.dataset import generate_dataset

    cams = 6 if args.cams is None else args.cams
    if args.images_per_cam < 1:
        raise InvalidInputError(f"--images-per-cam must be at least 1, got {args.images_per_cam}.")
    root = generate_dataset(out, num_ids=args.ids, num_cams=cams, seed=args.seed,
                            images_per_id_per_cam=args.images_per_cam)
    print(f"Wrote the synthetic dataset to {root} in {time.perf_counter() - start:.1f} s.")
    Market1501(root, verbose=True)
    return 0


def _run_vi(args: argparse.Namespace, out: Path, start: float) -> int:
    """Write the visible-infrared set (``--ids`` default per layout) and print its summary."""
    from edge_reid.data import build_dataset
    from edge_reid.data.synthetic.vi_dataset import default_vi_params, generate_vi_dataset

    params = default_vi_params(args.vi)
    ids = params["num_ids"] if args.ids == 200 else args.ids
    per_cam = params["images_per_id_per_cam"] if args.images_per_cam == 4 else args.images_per_cam
    root = generate_vi_dataset(out, layout=args.vi, num_ids=ids, seed=args.seed, images_per_id_per_cam=per_cam)
    print(f"Wrote the visible-infrared set ({args.vi} layout) to {root} in {time.perf_counter() - start:.1f} s.")
    build_dataset("sysu_mm01" if args.vi == "sysu" else "regdb", root, verbose=True)
    return 0
