"""Runtime: one :class:`Embedder` interface over torch, onnxruntime and TensorRT backends.

``load_embedder(path)`` picks the backend from the artifact's content, never from its name:
an edge-reid checkpoint (a torch zip archive) -> ``torch``; a zip archive holding an AOTInductor
model (``build --format aoti``) -> ``aoti``; an ONNX protobuf -> ``onnxruntime``; an engine with its
edge-reid side file -> ``tensorrt``. Importing this package does not
import torch (the Jetson path); the torch backend imports it when used.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Union

from edge_reid.errors import InvalidInputError
from edge_reid.runtime.base import BACKENDS, Embedder
from edge_reid.runtime.preprocess import preprocess_crops

__all__ = ["BACKENDS", "Embedder", "detect_backend", "load_embedder", "preprocess_crops"]

_BACKEND_MODULES = {
    "torch": "edge_reid.runtime.torch_backend",
    "aoti": "edge_reid.runtime.aoti_backend",
    "onnxruntime": "edge_reid.runtime.onnxruntime_backend",
    "tensorrt": "edge_reid.runtime.tensorrt_backend",
}


def detect_backend(path: Union[str, Path]) -> str:
    """The backend for an artifact, from its content (zip archive, ONNX protobuf, engine side file)."""
    from edge_reid.deploy.aoti_package import looks_like_aoti_package
    from edge_reid.deploy.engine_meta import has_side_file

    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"Model file {path} does not exist.")
    if has_side_file(path):
        return "tensorrt"
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(b"PK\x03\x04"):
        # torch.save and AOTInductor both write zip archives: an AOTInductor model inside tells them apart
        return "aoti" if looks_like_aoti_package(path) else "torch"
    if head[:1] == b"\x08":
        return "onnxruntime"  # ModelProto starts with field 1 (ir_version), varint
    raise InvalidInputError(
        f"{path} is neither an edge-reid checkpoint, an AOTInductor package, an ONNX model nor an engine with its side file."
    )


def load_embedder(path: Union[str, Path], backend: str = "auto", **options: Any) -> Embedder:
    """Load ``path`` with ``backend`` (``auto``: chosen from the artifact's content)."""
    name = detect_backend(path) if backend == "auto" else backend
    if name not in _BACKEND_MODULES:
        raise InvalidInputError(f"Unknown backend '{name}'; known backends: auto, {', '.join(_BACKEND_MODULES)}.")
    importlib.import_module(_BACKEND_MODULES[name])  # registers the backend
    return BACKENDS.get(name)(path, **options)
