"""The PyTorch backend: an edge-reid checkpoint run eagerly (or compiled) on CPU or GPU.

The only runtime module that imports torch, and only when it is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np

from edge_reid.errors import MissingDependencyError
from edge_reid.runtime.base import BACKENDS, Embedder


@BACKENDS.register("torch")
class TorchEmbedder(Embedder):
    """Runs a checkpoint with PyTorch; ``device`` defaults to CUDA when visible."""

    backend = "torch"

    def __init__(self, path: Union[str, Path], device: Optional[str] = None, compile: bool = False,
                 batch_size: int = 64, **_: object) -> None:
        try:
            import torch
        except ImportError:
            raise MissingDependencyError("The torch backend needs PyTorch; install it or use onnxruntime/tensorrt.") from None
        from edge_reid.models.checkpoint import load_model_from_checkpoint

        model, meta, _payload = load_model_from_checkpoint(path)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._torch = torch
        self.model = model.to(device).eval()
        if compile:
            self.model = torch.compile(self.model)
        self.batch_size = int(batch_size)
        super().__init__(path, meta, precision="fp32", device=device)

    def _infer(self, batch: np.ndarray, extras: Dict[str, np.ndarray]) -> np.ndarray:
        torch = self._torch
        outs = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                stop = start + self.batch_size
                x = torch.from_numpy(batch[start:stop]).to(self.device)
                named = {k: torch.from_numpy(v[start:stop]).to(self.device) for k, v in extras.items()}
                outs.append(self.model(x, **named).float().cpu().numpy())
        return np.concatenate(outs, axis=0)
