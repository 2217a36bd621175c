"""``build --format aoti``: checkpoint -> one AOTInductor package per precision, parity-gated against PyTorch.

Each package is loaded back through ``load_embedder`` (the backend picked from its content) and its
embeddings compared with the PyTorch FP32 model's on the evaluation crops: FP32 under the FP32 gate
(max abs diff, like ONNX FP32) and a cosine of at least ``aoti_min_cosine`` (0.999); FP16 / BF16
(GPU only) by cosine. A ``manifest_aoti.json`` beside the packages records meta, parity, latency,
and which path the fused VisNet ops took.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge_reid.deploy import parity as P
from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.utils.atomic import atomic_write_json
from edge_reid.utils.paths import cache_dir

#: Cosine gates of the packages against PyTorch FP32 (per precision); FP32 also has the max-abs gate.
AOTI_GATES: Dict[str, float] = {"aoti_min_cosine": 0.999, "fp16_min_cosine": 0.999, "bf16_min_cosine": 0.995}


def aoti_precisions(requested: Sequence[str], device: str) -> Tuple[str, ...]:
    """The precisions to build on ``device`` (empty: all it supports); one sentence for any it cannot."""
    from edge_reid.deploy.aoti_export import PRECISIONS_BY_DEVICE

    allowed = PRECISIONS_BY_DEVICE[device]
    values = [p.strip().lower() for p in requested if p.strip()] or list(allowed)
    bad = [p for p in values if p not in allowed]
    if bad:
        hint = " (half precision needs a CUDA GPU)" if device == "cpu" else ""
        raise InvalidInputError(f"AOTInductor {device.upper()} packages are built in {', '.join(allowed)}, "
                                f"not {', '.join(bad)}{hint}.")
    return tuple(p for p in allowed if p in values)


def gate(result: P.ParityResult, precision: str, gates: Dict[str, float]) -> P.ParityResult:
    """Apply the package gates of ``precision`` to a comparison with PyTorch FP32."""
    gates = {**AOTI_GATES, **gates}
    if precision == "fp32":
        cos_ok = result.cosine_min >= gates["aoti_min_cosine"]
        if not cos_ok:
            result.gate, result.threshold = "aoti_min_cosine", gates["aoti_min_cosine"]
        result.passed = result.passed and cos_ok
    else:
        result.gate, result.threshold = f"{precision}_min_cosine", gates[f"{precision}_min_cosine"]
        result.passed = result.cosine_min >= result.threshold
    return result


def _parity_images(cfg: Any, input_size: Tuple[int, int]) -> Tuple[np.ndarray, Any]:
    if cfg.eval_dataset:
        from edge_reid.deploy.pipeline import load_eval_set

        eval_set = load_eval_set(cfg.eval_dataset, input_size, cfg.eval_limit)
        return eval_set.images, eval_set
    return np.random.default_rng(0).random((16, 3, *input_size), dtype=np.float32), None


def _embed_all(fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray, chunk: int = 32) -> np.ndarray:
    return np.concatenate([fn(images[i:i + chunk]) for i in range(0, len(images), chunk)], axis=0)


def build_aoti(cfg: Any, device: Optional[str] = None, say: Callable[[str], None] = print) -> Dict[str, Any]:
    """Build, load back, gate and time one package per precision; returns the manifest."""
    import torch

    from edge_reid.utils.timing import measure_latency
    from edge_reid.deploy.aoti_export import AotiExporter
    from edge_reid.deploy.default_model import resolve_model
    from edge_reid.runtime import load_embedder

    device = (device or ("cuda" if torch.cuda.is_available() else "cpu")).split(":")[0]
    if device not in ("cpu", "cuda"):
        raise InvalidInputError(f"--device takes cpu or cuda, got '{device}'.")
    if device == "cuda" and not torch.cuda.is_available():
        raise MissingDependencyError("--device cuda needs a CUDA GPU, but none is visible here; build a CPU package.")
    precisions = aoti_precisions(cfg.precisions, device)
    out = Path(cfg.out) if cfg.out else cache_dir() / "builds" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    model, meta, checkpoint = resolve_model(cfg, say)
    say(f"Model {meta.model}: input {meta.input_size[0]}x{meta.input_size[1]}, embedding {meta.embedding_dim}; "
        f"AOTInductor packages for {device} in {', '.join(precisions)}.")
    images, eval_set = _parity_images(cfg, meta.input_size)
    with torch.inference_mode():
        ref = _embed_all(lambda x: model(torch.from_numpy(x)).numpy(), images)
    results: List[P.ParityResult] = []
    packages: Dict[str, str] = {}
    exports: Dict[str, Dict[str, Any]] = {}
    rows: List[Dict[str, Any]] = []
    for precision in precisions:
        path = out / f"model_aoti_{device}_{precision}.pt2"
        say(f"Compiling {path.name} with AOTInductor (a minute or more per model on a small CPU)...")
        result = AotiExporter(precision, device, max_batch=max(cfg.batch[2], 2)).export(model, meta, path)
        say(f"Wrote {path} in {result.seconds:.1f} s; fused ops: {result.fusion}.")
        embedder = load_embedder(path, threads=cfg.threads)
        emb = _embed_all(embedder.embed, images)
        r = gate(P.compare(path.name, precision, "torch", ref, emb, cfg.gates), precision, cfg.gates)
        if eval_set is not None:
            nq = len(eval_set.query)
            ranks = P.retrieval_metrics(emb[:nq], emb[nq:], eval_set.q_pids, eval_set.g_pids,
                                        eval_set.q_camids, eval_set.g_camids)
            r.rank1, r.mAP = ranks["rank1"], ranks["mAP"]
        r.extra = {"fusion": result.fusion, "compile_s": result.seconds}
        results.append(r)
        packages[precision] = str(path)
        exports[precision] = {"fusion": result.fusion, "compile_s": result.seconds, "backend": embedder.backend}
        for b in sorted({1, cfg.batch[1]}):
            x = np.ascontiguousarray(np.resize(images, (b, *images.shape[1:])))
            rows.append({"backend": "aoti", "artifact": path.name, "precision": precision, "batch": b,
                         **measure_latency(embedder.embed, x, cfg.latency_iters)})
    parity_table = P.format_table([r.to_dict() for r in results], ["artifact", "precision", "reference", "cosine_min",
                                                                   "cosine_mean", "max_abs_diff", "rank1", "mAP", "passed"])
    latency_table = P.format_table(rows, ["backend", "precision", "batch", "p50_ms", "p90_ms", "images_per_s"])
    manifest = {"format": "edge-reid-aoti-build", "meta": meta.to_dict(),
                "checkpoint": str(checkpoint) if checkpoint else None, "out": str(out), "device": device,
                "packages": packages, "exports": exports, "parity": [r.to_dict() for r in results],
                "gates": {**P.DEFAULT_GATES, **AOTI_GATES, **cfg.gates}, "latency": rows,
                "torch_version": torch.__version__}
    atomic_write_json(out / "manifest_aoti.json", manifest)
    say("\nParity against PyTorch FP32\n" + parity_table)
    say("\nLatency (aoti backend)\n" + latency_table)
    P.enforce(results)
    say(f"\nPackages are in {out} (manifest: {out / 'manifest_aoti.json'}).")
    return manifest
