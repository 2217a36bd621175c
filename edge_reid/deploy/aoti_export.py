"""Checkpoint model -> AOTInductor package (``.pt2``): torch.export with a dynamic batch, then
``torch._inductor.aoti_compile_and_package``, the project's metadata inside.

One package per precision: FP32 on a CPU; FP32, FP16 and BF16 on a CUDA GPU. The package takes the
same input as every other artifact (RGB float32 N x 3 x H x W in [0, 1]) and returns float32
embeddings: half precision lives inside (the input is cast after it enters, the output before it
leaves), like the ONNX FP16 graph's FP32 I/O.

The fast VisNet fusion's custom ops (``kernels.scale_fusion``) are opaque to AOTInductor: a custom
op left in the graph would be called back through Python at run time, so the package would not run
without the model code. :data:`FUSED_OPS` lists each op with its exact PyTorch decomposition; the
exporter replaces every such op found in the exported graph by it (on a CPU the Triton kernels
cannot go into a package at all; on a GPU Inductor then generates its own Triton kernels for the
decomposed form) and records which path went in (``AotiExport.fusion``, the package metadata key
``edge_reid.fusion``, and the build's output).
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from edge_reid.deploy.aoti_package import FORMAT_VERSION, META_KEY, PACKAGE_FORMAT
from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.metadata import ModelMeta

#: Precisions a package can be compiled in, per device.
PRECISIONS_BY_DEVICE: Dict[str, Tuple[str, ...]] = {"cpu": ("fp32",), "cuda": ("fp32", "fp16", "bf16")}
#: Largest batch the dynamic batch dimension accepts (the runtime splits larger batches).
DEFAULT_MAX_BATCH = 256


def _dtype(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


# ----------------------------------------------------------------------------- fused custom ops


def _wsum_decomposition(maps: List[Any], weights: Any) -> Tuple[Any, Any]:
    from kernels.scale_fusion.op import weighted_sum_reference

    fused, gap = weighted_sum_reference(maps, weights)
    return fused.contiguous(), gap.contiguous()


def _projection_decomposition(x: Any, weight: Any, scale: Any, shift: Any, out_h: int, out_w: int) -> Tuple[Any, Any]:
    from kernels.scale_fusion.fast import project_sampled_affine

    out = project_sampled_affine(x, weight, scale, shift, (out_h, out_w)).contiguous()
    return out, out.mean(dim=(2, 3))


#: Custom ops of the fast fusion (qualified name -> exact PyTorch decomposition).
FUSED_OPS: Dict[str, Callable[..., Any]] = {
    "edge_reid::weighted_scale_sum": _wsum_decomposition,
    "edge_reid::sampled_projection": _projection_decomposition,
}


def custom_ops_in(exported: Any) -> List[str]:
    """Qualified names of the :data:`FUSED_OPS` that appear in an exported program's graph."""
    found = []
    for node in exported.graph.nodes:
        name = getattr(getattr(node.target, "_schema", None), "name", None) if node.op == "call_function" else None
        if name in FUSED_OPS and name not in found:
            found.append(name)
    return found


def lower_fused_ops(exported: Any, device: str) -> Tuple[Any, str]:
    """Replace the fused custom ops in ``exported`` by their decompositions; returns (program, what went in)."""
    import torch

    found = custom_ops_in(exported)
    if not found:
        return exported, "no fused custom ops in this model (plain PyTorch graph)"
    table: Dict[Any, Callable[..., Any]] = {}  # only these ops; Inductor lowers the rest itself
    for name in found:
        namespace, op = name.split("::")
        table[getattr(getattr(torch.ops, namespace), op).default] = FUSED_OPS[name]
    lowered = exported.run_decompositions(table)
    left = custom_ops_in(lowered)
    if left:
        raise InvalidInputError(f"The custom ops {left} stayed in the exported graph; the package cannot be built.")
    why = ("Triton kernels cannot be compiled into a CPU package" if device == "cpu" else
           "the hand-written Triton kernels are custom ops opaque to AOTInductor; Inductor generates Triton "
           "kernels for the decomposed form")
    return lowered, f"reference decomposition of {', '.join(found)} ({why})"


# ----------------------------------------------------------------------------- the exporter


def serving_module(model: Any, dtype: Any, channels_last: bool) -> Any:
    """``model`` behind float32 input and output: images are cast to ``dtype`` (channels-last if asked)."""
    import torch

    class Serving(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
            x = images.to(dtype)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return self.model(x, *extra).float()

    return Serving().eval()


@dataclass
class AotiExport:
    """What :meth:`AotiExporter.export` wrote."""

    path: Path
    precision: str
    device: str
    fusion: str
    seconds: float
    metadata: Dict[str, str]


class AotiExporter:
    """Compile a model into an AOTInductor package for ``device`` (default: CUDA when visible) in ``precision``."""

    def __init__(self, precision: str = "fp32", device: Optional[str] = None, max_batch: int = DEFAULT_MAX_BATCH,
                 inductor_configs: Optional[Dict[str, Any]] = None) -> None:
        try:
            import torch
        except ImportError:
            raise MissingDependencyError("AOTInductor packages need PyTorch; install it to build one.") from None
        self.device = (device or ("cuda" if torch.cuda.is_available() else "cpu")).split(":")[0]
        if self.device not in PRECISIONS_BY_DEVICE:
            raise InvalidInputError(f"AOTInductor packages are built for cpu or cuda, not '{device}'.")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise MissingDependencyError("A CUDA package needs a CUDA GPU, but none is visible here.")
        if precision not in PRECISIONS_BY_DEVICE[self.device]:
            raise InvalidInputError(
                f"A {self.device.upper()} package is built in {', '.join(PRECISIONS_BY_DEVICE[self.device])}, "
                f"not {precision}" + (" (half precision needs a CUDA GPU)." if self.device == "cpu" else "."))
        if int(max_batch) < 2:
            raise InvalidInputError(f"The package's maximum batch must be at least 2, got {max_batch}.")
        self.precision = precision
        self.max_batch = int(max_batch)
        self.inductor_configs = dict(inductor_configs or {})

    def metadata(self, meta: ModelMeta, fusion: str) -> Dict[str, str]:
        """The strings stored in the package (read back by :mod:`edge_reid.deploy.aoti_package`)."""
        import torch

        values = {"edge_reid.format": PACKAGE_FORMAT, "edge_reid.format_version": FORMAT_VERSION,
                  META_KEY: meta.to_json(), "edge_reid.precision": self.precision, "edge_reid.device": self.device,
                  "edge_reid.torch_version": torch.__version__, "edge_reid.toolkit_version": meta.toolkit_version,
                  "edge_reid.fusion": fusion, "edge_reid.max_batch": str(self.max_batch)}
        if self.device == "cuda":
            major, minor = torch.cuda.get_device_capability()
            values.update({"edge_reid.gpu_name": torch.cuda.get_device_name(), "edge_reid.compute_capability": f"{major}.{minor}"})
        return values

    def example_inputs(self, meta: ModelMeta, batch: int = 2) -> Tuple[Any, ...]:
        """Images (and the extra inputs ``meta.inputs`` names, int64 zeros) at ``batch``."""
        import torch

        images = torch.rand(batch, 3, *meta.input_size, device=self.device)
        extra = [torch.zeros(batch, dtype=torch.int64, device=self.device)
                 for _ in tuple(getattr(meta, "inputs", ("images",)))[1:]]
        return (images, *extra)

    def export(self, model: Any, meta: ModelMeta, path: Union[str, Path]) -> AotiExport:
        """Export, lower the fused ops, compile and package ``model`` to ``path`` (written atomically)."""
        import torch

        path = Path(path)
        if path.suffix != ".pt2":
            raise InvalidInputError(f"An AOTInductor package must be named *.pt2, got {path.name}.")
        started = time.perf_counter()
        net = copy.deepcopy(model).eval().to(device=self.device, dtype=_dtype(self.precision))
        channels_last = self.device == "cuda"
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        wrapped = serving_module(net, _dtype(self.precision), channels_last)
        inputs = self.example_inputs(meta)
        batch = torch.export.Dim("batch", min=1, max=self.max_batch)
        try:
            with torch.no_grad():
                exported = torch.export.export(wrapped, inputs, dynamic_shapes=tuple({0: batch} for _ in inputs))
        except Exception as exc:
            raise InvalidInputError(f"torch.export could not trace {meta.model} with a dynamic batch "
                                    f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).") from None
        exported, fusion = lower_fused_ops(exported, self.device)
        values = self.metadata(meta, fusion)
        configs = {**self.inductor_configs, "aot_inductor.metadata": values}
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as tmp:
            staged = Path(tmp) / path.name
            torch._inductor.aoti_compile_and_package(exported, package_path=str(staged), inductor_configs=configs)
            os.replace(staged, path)
        return AotiExport(path, self.precision, self.device, fusion, time.perf_counter() - started, values)
