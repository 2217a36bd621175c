"""The artifacts ``edge-reid bench`` times: one model's torch module, ONNX variants and engines.

A set comes from an ``edge-reid build`` folder (:func:`load_manifest`, its files checked against
the manifest's SHA-256 table) or is exported here (:func:`build_artifacts`) from a checkpoint, a
registry model or the export pipeline's default model (:func:`resolve_main`, :func:`extra_models`).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from edge_reid.bench import report as R
from edge_reid.bench.complexity_table import PAPER_NUM_CLASSES
from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta

#: ONNX artifact keys of the export pipeline -> precision labels in the tables.
PRECISION_OF_KEY = {"fp32": "fp32", "fp16": "fp16", "int8_cpu": "int8-cpu", "int8_trt": "int8-trt",
                    "int8_qat_cpu": "int8-qat-cpu", "int8_qat_trt": "int8-qat-trt"}


@dataclass
class ArtifactSet:
    """One model's deployable forms: the torch model, ONNX variants, engines, known accuracy."""

    meta: ModelMeta
    model: Any  # torch.nn.Module in eval mode
    onnx: Dict[str, Path] = field(default_factory=dict)  # pipeline keys: fp32, fp16, int8_trt, int8_cpu
    engines: Dict[str, Path] = field(default_factory=dict)
    accuracy: Dict[str, Dict[str, float]] = field(default_factory=dict)  # precision label -> rank1/mAP
    profile_max: int = 32
    trained: bool = True
    folder: Optional[Path] = None  # where its manifest.json is


def _find(path: str, folder: Path) -> Path:
    """A path written in a manifest, or the same file name in the manifest's folder (moved builds)."""
    p = Path(path)
    return p if p.is_file() else folder / p.name


def load_manifest(folder: Path, say: Callable[[str], None] = print) -> ArtifactSet:
    """Read a build folder written by ``edge-reid build`` (its ``manifest.json``)."""
    from edge_reid.models import build_model
    from edge_reid.models.checkpoint import load_model_from_checkpoint

    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise InvalidInputError(f"{folder} has no manifest.json; point --artifacts at an 'edge-reid build' output folder.")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    meta = ModelMeta.from_dict(manifest["meta"], source=f"manifest {path}")
    checkpoint = manifest.get("checkpoint")
    if checkpoint and Path(checkpoint).is_file():
        model = load_model_from_checkpoint(checkpoint)[0].eval()
    else:
        say(f"The checkpoint of {folder} is not here: torch rows time an untrained {meta.model} (same graph).")
        options = {**meta.model_options, "input_size": tuple(meta.input_size)}
        model = build_model(meta.model, num_classes=meta.num_ids, **options).eval()
    onnx = {k: _find(v, path.parent) for k, v in manifest.get("artifacts", {}).items()}
    engines = {k: _find(v, path.parent) for k, v in manifest.get("engines", {}).items()}
    verify_manifest_files(path, manifest.get("sha256"), [*onnx.values(), *engines.values()])
    by_name = {p.name: k for k, p in onnx.items()}
    accuracy = {}
    for row in manifest.get("parity", []):
        key = by_name.get(row.get("artifact"))
        if key and row.get("mAP") is not None:
            accuracy[PRECISION_OF_KEY.get(key, key)] = {"rank1": row["rank1"], "mAP": row["mAP"]}
    batch = manifest.get("config", {}).get("batch") or [1, 8, 32]
    return ArtifactSet(meta, model, onnx, engines, accuracy, int(batch[-1]), trained=bool(checkpoint),
                       folder=path.parent)


def verify_manifest_files(manifest: Path, hashes: Any, paths: Sequence[Path]) -> None:
    """Refuse a build folder whose files are not the ones its manifest describes (a mixed set:
    an interrupted rebuild, a file copied in from another build). Manifests older than the
    ``sha256`` table cannot be checked and are read as before."""
    from edge_reid.deploy.engine_meta import sha256_file

    if hashes is None:
        return
    for p in paths:
        if not p.is_file():
            raise InvalidInputError(f"{p} listed in {manifest} is missing; rebuild the folder with 'edge-reid build'.")
        if not isinstance(hashes, dict) or hashes.get(p.name) != sha256_file(p):
            raise InvalidInputError(f"{p} is not the file {manifest} describes (its SHA-256 differs): the folder mixes "
                                    "files of different builds; rebuild it with 'edge-reid build'.")


def build_artifacts(out: Path, model: Any, meta: ModelMeta, precisions: Sequence[str], calib: str,
                    calib_images: int, checkpoint: Optional[str], say: Callable[[str], None] = print) -> ArtifactSet:
    """Export ``model`` with :mod:`edge_reid.deploy` into ``out`` (FP32, FP16, INT8 flavours asked for).

    A ``manifest.json`` in the export pipeline's layout is written beside them, so the folder can
    be given back as ``--artifacts``; ``checkpoint`` None means untrained weights.
    """
    from edge_reid.deploy import int8
    from edge_reid.deploy.engine_meta import sha256_file
    from edge_reid.deploy.fp16 import to_fp16
    from edge_reid.deploy.onnx_export import OnnxExporter, load_onnx, save_onnx

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    onnx = {"fp32": OnnxExporter().export(model, meta, out / "model_fp32.onnx").path}
    if "fp16" in precisions:
        onnx["fp16"] = save_onnx(to_fp16(load_onnx(onnx["fp32"])), out / "model_fp16.onnx")
    flavours = [f for f in int8.FLAVOURS if f"int8-{f}" in precisions]
    if flavours:
        if calib == "random":
            data = int8.random_calibration(meta.input_size, min(calib_images, 64))
        else:
            name, _, split = calib.partition(":")
            data = int8.calibration_from_split(name, meta.input_size, split or "train", limit=calib_images)
        written = int8.Int8Quantizer().quantize(onnx["fp32"], data, {f: out / f"model_int8_{f}.onnx" for f in flavours})
        onnx.update({f"int8_{f}": p for f, p in written.items()})
    say(f"  exported {meta.model} ({', '.join(onnx)}) to {out} in {time.perf_counter() - t0:.1f} s")
    R.write_json(out / "manifest.json", {
        "format": "edge-reid-bench-artifacts", "meta": meta.to_dict(), "checkpoint": checkpoint,
        "artifacts": {k: str(v) for k, v in onnx.items()}, "engines": {}, "parity": [],
        "sha256": {p.name: sha256_file(p) for p in onnx.values()},
        "config": {"batch": [1, 8, 32], "calibration": calib, "calib_images": calib_images}})
    return ArtifactSet(meta, model, onnx, trained=checkpoint is not None, folder=out)


def resolve_main(args: argparse.Namespace, out: Path, say: Callable[[str], None] = print) -> ArtifactSet:
    """The benchmarked model: ``--artifacts``, else ``--checkpoint``, ``--model`` or the pipeline's default."""
    from edge_reid.models import build_model
    from edge_reid.models.checkpoint import load_model_from_checkpoint

    if args.artifacts:
        return load_manifest(Path(args.artifacts[0]), say)
    checkpoint: Optional[str] = args.checkpoint
    if args.checkpoint:
        model, meta, _ = load_model_from_checkpoint(args.checkpoint)
    elif args.model:
        size = args.input_size or (256, 128)
        say(f"No checkpoint: benchmarking an untrained '{args.model}' at {size[0]}x{size[1]} "
            "(latency is real; Rank-1/mAP of random weights are only a smoke test).")
        model = build_model(args.model, num_classes=PAPER_NUM_CLASSES, input_size=size)
        meta = model.meta("untrained")
    else:
        from edge_reid.deploy.default_model import default_checkpoint

        checkpoint = str(default_checkpoint(say))
        model, meta, _ = load_model_from_checkpoint(checkpoint)
    return build_artifacts(out / "artifacts" / meta.model, model.eval(), meta, args.precisions, args.calib,
                           args.calib_images, checkpoint, say)


def extra_models(args: argparse.Namespace, main: ArtifactSet, out: Path,
                 say: Callable[[str], None] = print) -> List[ArtifactSet]:
    """Untrained registry models timed beside the main one (``--models``; every model with ``--full``)."""
    from edge_reid.models import MODELS, build_model

    names = args.models if args.models is not None else (sorted(MODELS.names()) if args.full else [])
    size = tuple(main.meta.input_size)
    sets = [load_manifest(Path(folder), say) for folder in (args.artifacts or [])[1:]]  # more trained builds
    names = [n for n in names if n not in {s.meta.model for s in sets}]
    for name in [n for n in names if n != main.meta.model]:
        model = build_model(name, num_classes=PAPER_NUM_CLASSES, input_size=size).eval()
        sets.append(build_artifacts(out / "artifacts" / name, model, model.meta("untrained"), args.precisions,
                                    args.calib, args.calib_images, None, say))
    return sets
