"""The one runner interface every backend implements (numpy in, numpy out)."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from edge_reid.metadata import ModelMeta
from edge_reid.registry import Registry
from edge_reid.runtime.inputs import extra_inputs
from edge_reid.runtime.preprocess import Crops, l2_normalise, to_batch

#: Runtime backends by name: ``torch``, ``onnxruntime``, ``tensorrt``.
BACKENDS: Registry = Registry("backend")


class Embedder(abc.ABC):
    """Turns person crops into L2-normalised embeddings.

    ``embed`` takes a list of BGR uint8 H x W x 3 crops (any sizes; resized to
    ``meta.input_size``) or a float32 N x 3 x H x W RGB batch in [0, 1], and returns
    float32 N x D L2-normalised embeddings. A model whose ``meta.inputs`` names ``camera_ids``
    or ``modality`` needs them (one int or one per crop); others ignore them.
    """

    #: registry name of the backend
    backend: str = "unknown"

    def __init__(self, path: Union[str, Path], meta: ModelMeta, precision: str, device: str) -> None:
        self.path = Path(path)
        self.meta = meta
        self.precision = precision
        self.device = device

    @property
    def embedding_dim(self) -> int:
        return self.meta.embedding_dim

    def embed(self, crops: Crops, camera_ids: Union[int, Sequence[int], None] = None,
              modality: Union[int, Sequence[int], None] = None) -> np.ndarray:
        """Embed ``crops`` (see the class docstring); an empty list gives a 0 x D array.

        ``camera_ids`` / ``modality`` (an int for the whole batch, or one per crop) are fed only
        to a model whose ``meta.inputs`` names them (checked by ``runtime.inputs.extra_inputs``);
        a model that needs one not given is an error.
        """
        if isinstance(crops, (list, tuple)) and len(crops) == 0:
            return np.zeros((0, self.meta.embedding_dim), dtype=np.float32)
        batch = to_batch(crops, self.meta.input_size)
        if batch.shape[0] == 0:
            return np.zeros((0, self.meta.embedding_dim), dtype=np.float32)
        extra = extra_inputs(self.meta, batch.shape[0], {"camera_ids": camera_ids, "modality": modality})
        return l2_normalise(self._infer(batch, extra) if extra else self._infer(batch))

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray, inputs: Optional[Dict[str, np.ndarray]] = None) -> np.ndarray:
        """Run the model on a float32 N x 3 x H x W batch (and its checked extra int64 inputs); return N x D."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(path={str(self.path)!r}, model={self.meta.model!r}, "
                f"precision={self.precision!r}, device={self.device!r})")
