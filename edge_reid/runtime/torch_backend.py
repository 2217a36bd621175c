"""The PyTorch backend: an edge-reid checkpoint run eagerly, compiled, or as CUDA graphs, on CPU or GPU.

On a CUDA device inference defaults to FP16 weights and activations, channels-last memory format
and one CUDA graph per batch bucket (a batch is padded up to its bucket; see
:mod:`edge_reid.runtime.cuda_graphs`); ``precision``, ``channels_last`` and ``cuda_graphs`` override
each. On a CPU it runs FP32 eagerly. Input and output stay float32 either way.

The only runtime module that imports torch, and only when it is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.runtime.base import BACKENDS, Embedder
from edge_reid.runtime.cuda_graphs import DEFAULT_BUCKETS, CudaGraphRunner, check_buckets

#: Precisions of the torch backend; half precision only on CUDA.
PRECISIONS = ("fp32", "fp16", "bf16")


def torch_dtype(precision: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def serving_options(device: str, precision: Optional[str], channels_last: Optional[bool],
                    cuda_graphs: Optional[bool]) -> "tuple[str, bool, bool]":
    """Resolve the defaults (CUDA: fp16, channels-last, CUDA graphs; CPU: fp32, eager) and check them."""
    cuda = device.startswith("cuda")
    precision = precision or ("fp16" if cuda else "fp32")
    if precision not in PRECISIONS:
        raise InvalidInputError(f"The torch backend runs in {', '.join(PRECISIONS)}, not '{precision}'.")
    if precision != "fp32" and not cuda:
        raise InvalidInputError(f"The torch backend runs {precision} on a CUDA device only; use fp32 on {device}.")
    if cuda_graphs and not cuda:
        raise InvalidInputError(f"CUDA graphs need a CUDA device; the model runs on {device}.")
    return precision, cuda if channels_last is None else bool(channels_last), cuda if cuda_graphs is None else bool(cuda_graphs)


@BACKENDS.register("torch")
class TorchEmbedder(Embedder):
    """Runs a checkpoint with PyTorch; ``device`` defaults to CUDA when visible."""

    backend = "torch"

    def __init__(self, path: Union[str, Path], device: Optional[str] = None, compile: bool = False,
                 batch_size: int = 64, precision: Optional[str] = None, channels_last: Optional[bool] = None,
                 cuda_graphs: Optional[bool] = None, buckets: Sequence[int] = DEFAULT_BUCKETS, **_: object) -> None:
        try:
            import torch
        except ImportError:
            raise MissingDependencyError("The torch backend needs PyTorch; install it or use onnxruntime/tensorrt.") from None
        from edge_reid.models.checkpoint import load_model_from_checkpoint

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        precision, channels_last, cuda_graphs = serving_options(device, precision, channels_last, cuda_graphs)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise MissingDependencyError(f"Device {device} was asked for, but no CUDA GPU is visible here.")
        model, meta, _payload = load_model_from_checkpoint(path)
        self._torch = torch
        self.dtype = torch_dtype(precision)
        model = model.to(device=device, dtype=self.dtype).eval()
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        if compile:  # on CUDA max-autotune; its own CUDA graphs only when ours are off (they cannot nest)
            mode = ("max-autotune-no-cudagraphs" if cuda_graphs else "max-autotune") if device.startswith("cuda") else None
            self.model = torch.compile(self.model, mode=mode)
        self.channels_last = channels_last
        self.batch_size = int(batch_size)
        super().__init__(path, meta, precision=precision, device=device)
        self.graphs = CudaGraphRunner(self._forward, (3, *meta.input_size), device, check_buckets(buckets)) \
            if cuda_graphs else None

    def _forward(self, x: Any, **extra: Any) -> Any:
        """float32 N x 3 x H x W on the device (+ the model's extra inputs) -> float32 embeddings
        (the cast and layout inside)."""
        x = x.to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=self._torch.channels_last)
        return self.model(x, **extra).float()

    def _infer(self, batch: np.ndarray, inputs: Optional[Dict[str, np.ndarray]] = None) -> np.ndarray:
        if self.graphs is not None and not inputs:  # the graphs are captured for image-only models
            return self.graphs(np.ascontiguousarray(batch, dtype=np.float32))
        torch = self._torch
        outs = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                stop = start + self.batch_size
                x = torch.from_numpy(batch[start:stop]).to(self.device)
                extra = {k: torch.from_numpy(v[start:stop]).to(self.device) for k, v in (inputs or {}).items()}
                outs.append(self._forward(x, **extra).cpu().numpy())
        return np.concatenate(outs, axis=0)
