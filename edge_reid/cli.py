"""The ``edge-reid`` command line: a thin dispatcher over the sub-packages.

Each command lives in the module that owns the work and exposes two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace) -> int

Only the module of the command being run is imported, so ``edge-reid stream`` on a Jetson
never imports PyTorch. User errors (:class:`~edge_reid.errors.EdgeReidError`) and errors of the
operating system (``OSError``: disk full, read-only folder, permissions) are printed as one
sentence with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from edge_reid.errors import EdgeReidError, os_error_sentence
from edge_reid.version import __version__

#: command name -> (module implementing it, one-line help)
COMMANDS: Dict[str, Tuple[str, str]] = {
    "synth": ("edge_reid.data.synthetic.command", "render the synthetic ReID dataset (Market-1501 layout) or video"),
    "eval": ("edge_reid.evaluation.command", "evaluate a model on a dataset: CMC, mAP, mINP and ranked-list pictures"),
    "export": ("edge_reid.deploy.export_command", "export a checkpoint to ONNX (dynamic batch, metadata, parity vs PyTorch)"),
    "build": ("edge_reid.deploy.command", "build ONNX FP32/FP16/INT8 and TensorRT engines with parity gates and a latency table"),
    "train": ("edge_reid.engine.command", "train a model from a YAML config"),
    "stream": ("edge_reid.stream.command", "run ReID on live camera streams, video files, RTSP or GStreamer sources"),
    "bench": ("edge_reid.bench.command", "benchmark params/FLOPs, latency per backend and precision, accuracy vs latency"),
}


def _build_parser(command: Optional[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-reid",
        description="Person re-identification from paper to camera: train, evaluate, export, benchmark, stream.",
    )
    parser.add_argument("--version", action="version", version=f"edge-reid {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def run_guarded(func: Callable[[], int], prog: str = "edge-reid") -> int:
    """Run ``func``; turn a user error, or an error of the operating system (disk full, read-only
    folder, permissions), into one sentence on stderr and exit status 2."""
    try:
        return int(func() or 0)
    except EdgeReidError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: error: {os_error_sentence(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted.", file=sys.stderr)
        return 130


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``edge-reid`` console script (and of the scripts in export/, train/)."""
    args_list: List[str] = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    if command is None or command not in COMMANDS:
        parser = _build_parser(None)
        if command is not None:
            parser.error(f"unknown command '{command}' (choose from {', '.join(COMMANDS)})")
        parser.parse_args(args_list)  # handles --help and --version
        parser.print_help()
        return 1

    def _go() -> int:
        # importing the command's module may itself raise a user error (a missing dependency)
        args = _build_parser(command).parse_args(args_list)
        return args._run(args)

    return run_guarded(_go)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
