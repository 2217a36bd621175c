"""The build pipeline: checkpoint -> ONNX FP32/FP16/INT8 -> (engines) -> parity, latency, manifest.

``run_build(BuildConfig())`` is the embedded default: VisNet (trained once with the quick
synthetic config and cached under ``cache_dir()``), synthetic calibration and evaluation data,
every precision, the best backend available (TensorRT with a GPU, else ONNX Runtime), parity
gates, and a latency / accuracy table. Everything lands in one output folder with a
``manifest.json`` describing it.
"""

from __future__ import annotations

import copy
import functools
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_reid.deploy import parity as P
# the build's configuration lives in build_config; its names stay importable from here
from edge_reid.deploy.build_config import BuildConfig, parse_batch, parse_precisions
from edge_reid.deploy.build_inputs import (HELD_OUT, EvalSet, ParityImages, check_calib_images, hold_out,
                                           load_calibration, load_eval_set)
from edge_reid.deploy.compat import check_tensorrt_compat
from edge_reid.deploy.default_model import resolve_model
from edge_reid.deploy.int8 import AUTO_FLOAT
from edge_reid.deploy.onnx_export import OnnxExporter, load_onnx, save_onnx
from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.runtime.inputs import example_ids
from edge_reid.utils.atomic import atomic_write_json
from edge_reid.utils.paths import cache_dir, ensure_writable_dir
from edge_reid.utils.staging import staged_dir
from edge_reid.utils.timing import measure_latency

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- the build


def _embed_all(embedder: Any, images: np.ndarray, ids: Dict[str, np.ndarray], chunk: int = 32) -> np.ndarray:
    """Embed ``images`` in chunks with their per-image ids (camera_ids / modality, if the model takes them)."""
    return np.concatenate([embedder.embed(images[i:i + chunk], **{k: v[i:i + chunk] for k, v in ids.items()})
                           for i in range(0, len(images), chunk)], axis=0)


def _embed_torch(model: Any, images: np.ndarray, ids: Dict[str, np.ndarray], chunk: int = 32,
                 float64: bool = False) -> np.ndarray:
    """PyTorch's embeddings of ``images`` (the parity reference), in chunks, in float32 or float64 (the
    model's own dtype must match)."""
    import torch

    dtype = torch.float64 if float64 else torch.float32
    with torch.inference_mode():
        return np.concatenate([model(torch.from_numpy(images[i:i + chunk]).to(dtype),
                                     **{k: torch.from_numpy(v[i:i + chunk]) for k, v in ids.items()}).numpy()
                               for i in range(0, len(images), chunk)])


def _embed_float64(model: Any, images: np.ndarray, ids: Dict[str, np.ndarray],
                   rows: np.ndarray) -> np.ndarray:
    """PyTorch float64 embeddings of the images at ``rows`` (a copy of the model: ``model`` stays float32)."""
    exact = copy.deepcopy(model).double().eval()
    return _embed_torch(exact, images[rows], {k: v[rows] for k, v in ids.items()}, float64=True)


def run_build(cfg: BuildConfig, say: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run the whole pipeline; returns the manifest (also written to ``<out>/manifest.json``).

    Everything is built in a staging folder beside ``out`` that replaces it only at the end: a
    build that fails or is killed leaves ``out`` as it was (an earlier build, or nothing).
    """
    unknown = sorted(set(cfg.precisions) - {"fp32", "fp16", "int8"})
    if unknown:
        raise InvalidInputError(f"Unknown precision(s) {unknown}; choose from fp32, fp16, int8.")
    check_calib_images(cfg.calib_images)
    out = Path(cfg.out).expanduser() if cfg.out else cache_dir() / "builds" / time.strftime("%Y%m%d-%H%M%S")
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out} exists and is not a folder.")
    ensure_writable_dir(out.parent, "The folder of --out")
    with staged_dir(out) as stage:
        manifest, results = _build(cfg, stage, out, say)
    P.enforce(results)
    say(f"\nArtifacts are in {out} (manifest: {out / 'manifest.json'}).")
    return manifest


def _build(cfg: BuildConfig, out: Path, final: Path, say: Callable[[str], None]) -> Tuple[Dict[str, Any], list]:
    """The build into ``out`` (the staging folder); paths in the manifest name ``final``."""
    from edge_reid.deploy.engine_meta import sha256_file, side_file
    from edge_reid.deploy.int8 import FLAVOURS, Int8Quantizer
    from edge_reid.runtime import load_embedder

    model, meta, checkpoint = resolve_model(cfg, say)
    say(f"Model {meta.model}: input {meta.input_size[0]}x{meta.input_size[1]}, embedding {meta.embedding_dim}.")

    # data: evaluation split (also the parity crops) and calibration crops; parity crops are
    # never ones the calibration saw, or the build says it could not avoid it
    eval_set: Optional[EvalSet] = None
    parity = ParityImages(np.random.default_rng(0).random((16, 3, *meta.input_size), dtype=np.float32),
                          "16 random images", True)
    if cfg.eval_dataset:
        eval_set = load_eval_set(cfg.eval_dataset, meta.input_size, cfg.eval_limit)
        split = (cfg.calib_split or "").partition(":")
        overlap = "int8" in cfg.precisions and split[0] == cfg.eval_dataset and split[2] in ("query", "gallery")
        parity = ParityImages(eval_set.images, f"{cfg.eval_dataset} query+gallery", not overlap)
    calib, calib_source = (None, "none")
    if "int8" in cfg.precisions or cfg.qat:
        calib, calib_source = load_calibration(cfg, meta.input_size, extra=0 if eval_set is not None else HELD_OUT)
        if eval_set is None:
            calib, parity = hold_out(calib, cfg.calib_images, calib_source)
        say(f"INT8 calibration: {len(calib)} crops from {calib_source}.")
    say(f"Parity crops: {parity.source}.")
    if not parity.unseen_by_calibration:
        say("Warning: INT8 parity is measured on images the calibration saw, so its gate proves little; give "
            "--eval-dataset or more calibration images.")
    parity_images = parity.images

    # per-image ids for camera-aware / two-modality models: the evaluation images' own cameras
    parity_ids = example_ids(meta, len(parity_images))
    if eval_set is not None and "camera_ids" in parity_ids:
        parity_ids["camera_ids"] = np.concatenate([eval_set.q_camids, eval_set.g_camids]).astype(np.int64)

    # 1. FP32 ONNX
    artifacts: Dict[str, Path] = {}
    t0 = time.perf_counter()
    export = OnnxExporter(opset=cfg.opset).export(model, meta, out / "model_fp32.onnx")
    artifacts["fp32"] = export.path
    say(f"Exported {export.path} (opset {export.opset}, simplified: {export.simplified}) in {time.perf_counter() - t0:.1f} s.")
    ref_torch = _embed_torch(model, parity_images, parity_ids)
    if "fp16" in cfg.precisions:
        from edge_reid.deploy.fp16 import to_fp16

        artifacts["fp16"] = save_onnx(to_fp16(load_onnx(export.path)), out / "model_fp16.onnx")
    if cfg.qat:  # first: a checkpoint without training data stops here, before the long steps
        from edge_reid.deploy.qat import run_qat
        from edge_reid.deploy.qat_plan import plan_qat

        qat_plan = plan_qat(meta, checkpoint, calib, cfg.qat_config, cfg.qat_settings)
    float_nodes: Optional[List[str]] = None
    if calib is not None and "int8" in cfg.precisions:
        if cfg.int8_keep_float == (AUTO_FLOAT,):
            from edge_reid.deploy.int8_sensitivity import auto_float_nodes

            float_nodes = auto_float_nodes(export.path, calib, out, eval_set, {**P.DEFAULT_GATES, **cfg.gates}[
                "int8_min_cosine"], cfg.threads, say).float_nodes
        written = Int8Quantizer(keep_float=cfg.int8_keep_float).quantize(
            export.path, calib, {f: out / f"model_int8_{f}.onnx" for f in FLAVOURS}, float_nodes=float_nodes)
        for flavour, path in written.items():
            artifacts[f"int8_{flavour}"] = path
    if cfg.qat:  # from the post-training point: its float set (when one was chosen), calibrated scales
        qat_paths = run_qat(model, meta, qat_plan, calib, out, float_nodes or (), export.path, say, eval_set,
                            {**P.DEFAULT_GATES, **cfg.gates}["int8_min_cosine"], cfg.threads)
        artifacts.update({f"int8_qat_{flavour}": path for flavour, path in qat_paths.items()})

    # 2. compatibility with TensorRT's parser (informative on CPU-only builds)
    compat = {}
    for key in [k for k in artifacts if not k.endswith("_cpu")]:
        report = check_tensorrt_compat(artifacts[key])
        compat[key] = {"ok": report.ok, "problems": report.problems}
        if not report.ok:
            say(f"Warning: {artifacts[key].name} is not TensorRT compatible: {report.problems[:3]}")

    # 3. parity (ONNX Runtime on the CPU: the reference numbers on any machine)
    results: List[P.ParityResult] = []
    embeddings: Dict[str, np.ndarray] = {}
    for key, path in artifacts.items():
        emb = _embed_all(load_embedder(path, "onnxruntime", threads=cfg.threads), parity_images, parity_ids)
        embeddings[key] = emb
    threshold = {**P.DEFAULT_GATES, **cfg.gates}["fp32_max_abs"]
    ref_torch, flipped = P.settle_rounding_flips(ref_torch, embeddings["fp32"], threshold,
                                                 lambda rows: _embed_float64(model, parity_images, parity_ids, rows))
    results.append(P.compare("model_fp32.onnx", "fp32", "torch", ref_torch, embeddings["fp32"], cfg.gates))
    if flipped:
        results[-1].extra["float64_rows"] = flipped
        say(f"FP32 parity: {len(flipped)} image(s) where PyTorch float32 rounding flips a hard decision are "
            "compared with PyTorch float64 instead (the ONNX model agrees with it).")
    for key in artifacts:
        if key != "fp32":
            results.append(P.compare(artifacts[key].name, key.split("_")[0], "onnx-fp32", embeddings["fp32"],
                                     embeddings[key], cfg.gates))
    if eval_set is not None:
        nq = len(eval_set.query)
        ranks = {"torch": P.retrieval_metrics(ref_torch[:nq], ref_torch[nq:], eval_set.q_pids, eval_set.g_pids,
                                              eval_set.q_camids, eval_set.g_camids)}
        for key, emb in embeddings.items():
            ranks[key] = P.retrieval_metrics(emb[:nq], emb[nq:], eval_set.q_pids, eval_set.g_pids,
                                             eval_set.q_camids, eval_set.g_camids)
        for r in results:
            key = next(k for k, p in artifacts.items() if p.name == r.artifact)
            r.rank1, r.mAP = ranks[key]["rank1"], ranks[key]["mAP"]

    # 4. engines where TensorRT and a GPU exist; otherwise ONNX Runtime runs every artifact
    from edge_reid.deploy.trt_builder import BuildOptions, TensorRTBuilder, tensorrt_available

    why_not = tensorrt_available()
    backend = cfg.backend if cfg.backend != "auto" else ("tensorrt" if why_not is None else "onnxruntime")
    if backend == "tensorrt" and why_not is not None:
        raise EdgeReidError(why_not)
    runnable: Dict[str, Path] = dict(artifacts)
    if backend == "tensorrt":
        builder = TensorRTBuilder(BuildOptions(*cfg.batch, workspace_mb=cfg.workspace_mb,
                                               timing_cache=cache_dir() / "tensorrt.timing-cache",
                                               dla_core=cfg.dla_core))
        runnable = {}
        for key, path in artifacts.items():
            if key.endswith("_cpu"):
                continue
            engine = out / f"{path.stem}.engine"
            builder.build(path, engine)
            runnable[key] = engine
            say(f"Built {engine}.")
    else:
        say(f"Backend: onnxruntime ({(why_not or 'requested').rstrip('.')}).")

    # 5. latency / accuracy table
    cos_by_key = {k: r for k, r in zip(["fp32"] + [k for k in artifacts if k != "fp32"], results)}
    rows: List[Dict[str, Any]] = []
    batches = sorted({1, cfg.batch[1]})
    for key, path in runnable.items():
        embedder = load_embedder(path, backend, threads=cfg.threads)
        reference_cos = P.cosines(embeddings["fp32"], _embed_all(embedder, parity_images, parity_ids)) \
            if backend == "tensorrt" \
            else P.cosines(embeddings["fp32"], embeddings[key])
        for b in batches:
            x = np.ascontiguousarray(np.resize(parity_images, (b, *parity_images.shape[1:])))
            lat = measure_latency(functools.partial(embedder.embed, **example_ids(meta, b)), x, cfg.latency_iters)
            r = cos_by_key[key]
            rows.append({"backend": backend, "artifact": path.name, "precision": embedder.precision, "batch": b,
                         **lat, "cos_min_vs_fp32": float(reference_cos.min()),
                         "cos_mean_vs_fp32": float(reference_cos.mean()), "rank1": r.rank1, "mAP": r.mAP})
    columns = ["backend", "precision", "batch", "p50_ms", "p90_ms", "images_per_s", "cos_min_vs_fp32",
               "cos_mean_vs_fp32", "rank1", "mAP"]
    table = P.format_table(rows, columns)
    parity_table = P.format_table([r.to_dict() for r in results],
                                  ["artifact", "precision", "reference", "cosine_min", "cosine_mean",
                                   "max_abs_diff", "rank1", "mAP", "passed"])
    files = [*artifacts.values(), *(runnable.values() if backend == "tensorrt" else ())]
    files += [side_file(p) for p in files if side_file(p).is_file()]
    manifest = {
        "format": "edge-reid-build", "meta": meta.to_dict(), "checkpoint": str(checkpoint) if checkpoint else None,
        "out": str(final), "artifacts": {k: str(final / v.name) for k, v in artifacts.items()},
        "engines": {k: str(final / v.name) for k, v in runnable.items()} if backend == "tensorrt" else {},
        "sha256": {p.name: sha256_file(p) for p in files}, "parity_images": parity.to_dict(),
        "backend": backend, "calibration": {"source": calib_source, "images": 0 if calib is None else len(calib)},
        "parity": [r.to_dict() for r in results], "gates": {**P.DEFAULT_GATES, **cfg.gates},
        "latency": rows, "compat": compat, "config": {**asdict(cfg)},
    }
    atomic_write_json(out / "manifest.json", manifest)
    say("\nParity\n" + parity_table)
    say("\nLatency and accuracy\n" + table)
    return manifest, results


def summarise(meta: ModelMeta, paths: Sequence[Path]) -> str:
    """One line per artifact, for command-line output."""
    return "\n".join(f"  {p}" for p in paths)


__all__ = ["BuildConfig", "load_eval_set", "parse_batch", "parse_precisions", "run_build", "summarise"]
