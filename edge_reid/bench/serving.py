"""Serving rows of ``edge-reid bench``: CUDA graphs and AOTInductor packages beside eager / compiled PyTorch.

Backends added to the latency grid:

* ``torch-cudagraph`` - the model in the precision asked for, channels-last, one CUDA graph per
  batch (:class:`edge_reid.runtime.cuda_graphs.CudaGraphRunner`); CUDA only;
* ``aoti`` - an AOTInductor package compiled for this device and precision (CPU: fp32; CUDA: fp32,
  fp16, bf16), run through the ``aoti`` runtime backend; compile time is the row's ``setup_s``.

``--serving`` is the preset of the issue's grid: on a GPU eager, torch.compile (max-autotune), CUDA
graphs and packages in fp32/fp16/bf16 at batch 1/8/32/128 with plain ResNet50 beside VisNet (fast
fusion); on a CPU the FP32 package beside ONNX Runtime FP32/INT8 and eager PyTorch at batch 1/8.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import numpy as np

from edge_reid.bench.latency import Target

#: Backends this module provides (the rest live in edge_reid.bench.targets).
SERVING_BACKENDS = ("torch-cudagraph", "aoti")
HALF = ("fp16", "bf16")


def use_fusion_impl(model: Any, impl: str) -> int:
    """Switch every fusion module of ``model`` to ``impl`` (no parameter depends on it); returns how many."""
    count = 0
    for module in model.modules():
        if hasattr(module, "fusion_impl"):
            module.fusion_impl = impl
            count += 1
    return count


def apply_serving_preset(args: argparse.Namespace, cuda: bool) -> None:
    """Fill the ``--serving`` grid for this machine (explicit options win)."""
    args.stages = ["latency"] if args.stages is None else args.stages
    if cuda:
        args.backends = args.backends or ["torch-eager", "torch-compile", "torch-cudagraph", "aoti", "tensorrt"]
        args.precisions = args.precisions or ["fp32", "fp16", "bf16"]
        args.batches = args.batches or [1, 8, 32, 128]
    else:
        args.backends = args.backends or ["torch-eager", "onnxruntime", "aoti"]
        args.precisions = args.precisions or ["fp32", "int8-cpu"]
        args.batches = args.batches or [1, 8]
    if args.models is None:
        args.models = ["resnet50"]
    if cuda and args.fusion_impl is None:
        args.fusion_impl = "fast"


def cudagraph_maker(model: Any, precision: str, input_size: Sequence[int]) -> Callable[[], Callable[[np.ndarray], Any]]:
    """A target factory: ``model`` in ``precision``, channels-last, replayed as one CUDA graph per batch size."""

    def make() -> Callable[[np.ndarray], Any]:
        import torch

        from edge_reid.runtime.cuda_graphs import CudaGraphRunner
        from edge_reid.runtime.torch_backend import torch_dtype

        dtype = torch_dtype(precision)
        net = copy.deepcopy(model).to(device="cuda", dtype=dtype).eval().to(memory_format=torch.channels_last)

        def forward(x: Any) -> Any:
            return net(x.to(dtype).contiguous(memory_format=torch.channels_last)).float()

        runner = CudaGraphRunner(forward, (3, *input_size), "cuda", buckets=(1, 8, 32, 128, 256))
        return runner

    return make


def aoti_maker(model: Any, meta: Any, precision: str, device: str, folder: Path) -> Callable[[], Callable[[np.ndarray], Any]]:
    """A target factory: compile (once, into ``folder``) and load an AOTInductor package."""

    def make() -> Callable[[np.ndarray], Any]:
        from edge_reid.deploy.aoti_export import AotiExporter
        from edge_reid.runtime import load_embedder

        path = folder / f"model_aoti_{device}_{precision}.pt2"
        if not path.is_file():
            AotiExporter(precision, device, max_batch=256).export(model, meta, path)
        return load_embedder(path, "aoti").embed

    return make


def serving_targets(sets: Sequence[Any], backends: Sequence[str], precisions: Sequence[str], device: str,
                    notes: List[Dict[str, Any]]) -> List[Target]:
    """CUDA-graph and AOTInductor targets for every set; what this machine cannot run goes to ``notes``."""
    from edge_reid.deploy.aoti_export import PRECISIONS_BY_DEVICE

    def note(model: str, backend: str, precision: str, reason: str) -> None:
        notes.append({"model": model, "backend": backend, "precision": precision, "batch": None, "reason": reason})

    targets: List[Target] = []
    floats = [p for p in precisions if p in ("fp32",) + HALF]
    for s in sets:
        name = s.meta.model
        source = "checkpoint" if s.trained else "untrained model"
        if "torch-cudagraph" in backends:
            if device != "cuda":
                note(name, "torch-cudagraph", "all", "CUDA graphs need a CUDA GPU")
            else:
                targets += [Target(name, "torch-cudagraph", p, source, cudagraph_maker(s.model, p, s.meta.input_size), "cuda")
                            for p in floats]
        if "aoti" in backends:
            folder = Path(s.folder or ".")
            for p in floats:
                if p not in PRECISIONS_BY_DEVICE[device]:
                    note(name, "aoti", p, f"{device.upper()} packages are built in {', '.join(PRECISIONS_BY_DEVICE[device])}")
                    continue
                targets.append(Target(name, "aoti", p, f"model_aoti_{device}_{p}.pt2",
                                      aoti_maker(s.model, s.meta, p, device, folder), device))
    return targets
