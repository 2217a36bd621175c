"""``edge-reid train``: train a model from a YAML config (also ``python train/train.py``)."""

from __future__ import annotations

import argparse

from edge_reid.engine.config import resolve_sequence


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``edge-reid train``."""
    parser.add_argument("--config", "-c", help="YAML config (train/configs/NAME.yaml); optional with --resume")
    parser.add_argument("--set", dest="overrides", action="append", nargs="+", metavar="KEY=VALUE", default=[],
                        help="override a config value, e.g. --set train.epochs=5 optim.lr=1e-4 (YAML typed)")
    parser.add_argument("--resume", metavar="RUN_DIR_OR_CHECKPOINT",
                        help="continue a run from its folder (last.pth) or a checkpoint file")
    parser.add_argument("--quiet", action="store_true", help="no dataset summary or final table")


def run(args: argparse.Namespace) -> int:
    """Train; a user error (bad config, corrupt checkpoint) propagates as EdgeReidError (exit 2)."""
    from edge_reid.engine.api import train

    train(args.config, resolve_sequence(args.overrides), resume=args.resume, verbose=not args.quiet)
    return 0
