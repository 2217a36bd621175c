"""What the latency stage times: every model x backend x precision this machine can run.

PyTorch eager / torch.compile rows time the model itself, ONNX Runtime and TensorRT rows the
set's ONNX files and engines through :func:`edge_reid.runtime.load_embedder`; the serving
backends (CUDA graphs, AOTInductor) come from :mod:`edge_reid.bench.serving`. What cannot run
here becomes a note with its reason, not a row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from edge_reid.bench.artifacts import PRECISION_OF_KEY, ArtifactSet
from edge_reid.bench.latency import Target
from edge_reid.bench.serving import serving_targets


def latency_targets(sets: Sequence[ArtifactSet], backends: Sequence[str], precisions: Sequence[str],
                    threads: int, notes: List[Dict[str, Any]]) -> List[Target]:
    """Every model x backend x precision this machine can run; what it cannot is added to ``notes``."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    targets: List[Target] = []

    def note(model: str, backend: str, precision: str, reason: str) -> None:
        notes.append({"model": model, "backend": backend, "precision": precision, "batch": None, "reason": reason})

    for s in sets:
        name = s.meta.model
        for backend in [b for b in ("torch-eager", "torch-compile") if b in backends]:
            for precision in [p for p in precisions if p in ("fp32", "fp16", "bf16")]:
                if precision != "fp32" and device == "cpu":
                    note(name, backend, precision, f"{precision.upper()} in PyTorch is measured on a GPU only (no CPU deployment path)")
                    continue
                targets.append(Target(name, backend, precision, "checkpoint" if s.trained else "untrained model",
                                      _torch_maker(s.model, device, precision, backend == "torch-compile"), device))
            if any(p.startswith("int8") for p in precisions):
                note(name, backend, "int8", "INT8 runs through the Q/DQ ONNX graphs (onnxruntime, tensorrt)")
        if "onnxruntime" in backends:
            for key, path in s.onnx.items():
                precision = PRECISION_OF_KEY.get(key, key)
                if precision in precisions:
                    targets.append(Target(name, "onnxruntime", precision, path.name,
                                          _embedder_maker(path, "onnxruntime", threads=threads), "cpu"))
        if "tensorrt" in backends:
            if s.engines:
                for key, path in s.engines.items():
                    targets.append(Target(name, "tensorrt", PRECISION_OF_KEY.get(key, key), path.name,
                                          _embedder_maker(path, "tensorrt"), "cuda"))
            else:
                from edge_reid.deploy.trt_builder import tensorrt_available

                why = tensorrt_available() or "no engines were built for these artifacts (run 'edge-reid build' on the GPU)"
                note(name, "tensorrt", "all", why)
    targets += serving_targets(sets, backends, precisions, device, notes)
    return targets


def _torch_maker(model: Any, device: str, precision: str, compiled: bool) -> Callable[[], Callable[[np.ndarray], Any]]:
    def make() -> Callable[[np.ndarray], Any]:
        import copy

        import torch

        from edge_reid.models.base import example_extra_inputs
        from edge_reid.runtime.torch_backend import torch_dtype

        dtype = torch_dtype(precision)
        net = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
        layout = torch.channels_last if device == "cuda" else torch.contiguous_format
        net = net.to(memory_format=layout)
        if compiled:  # max-autotune on a GPU (its own CUDA graphs included); the default mode on a CPU
            net = torch.compile(net, mode="max-autotune" if device == "cuda" else None)

        def run(x: np.ndarray) -> np.ndarray:
            extra = example_extra_inputs(model, len(x), device)  # camera ids of camera-aware models
            with torch.inference_mode():
                batch = torch.from_numpy(x).to(device=device, dtype=dtype).contiguous(memory_format=layout)
                return net(batch, **extra).float().cpu().numpy()

        return run

    return make


def _embedder_maker(path: Path, backend: str, **options: Any) -> Callable[[], Callable[[np.ndarray], Any]]:
    def make() -> Callable[[np.ndarray], Any]:
        from edge_reid.runtime import load_embedder
        from edge_reid.runtime.inputs import example_ids

        embedder = load_embedder(path, backend, **options)
        return lambda x: embedder.embed(x, **example_ids(embedder.meta, len(x)))  # ids where the model takes them

    return make
