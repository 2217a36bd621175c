"""The ONNX Runtime backend: any exported graph (FP32, FP16, INT8 Q/DQ) on CPU, CUDA or TensorRT EP.

Execution providers are picked from what the installed onnxruntime offers: TensorRT, then CUDA,
then CPU (``providers`` overrides). Metadata is read from the model's ``metadata_props`` through
the session, so neither torch nor the onnx package is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.metadata import ONNX_METADATA_KEY, ModelMeta
from edge_reid.runtime.base import BACKENDS, Embedder

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_DEVICE = {"TensorrtExecutionProvider": "cuda (ORT TensorRT EP)", "CUDAExecutionProvider": "cuda",
           "CPUExecutionProvider": "cpu"}


@BACKENDS.register("onnxruntime")
class OnnxRuntimeEmbedder(Embedder):
    """Runs an edge-reid ONNX graph with onnxruntime; ``threads`` sets intra-op threads (0 = ORT default)."""

    backend = "onnxruntime"

    def __init__(self, path: Union[str, Path], providers: Optional[Sequence[str]] = None, threads: int = 0,
                 **_: object) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("The onnxruntime backend needs onnxruntime; install it with 'pip install onnxruntime'.") from None
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"ONNX file {path} does not exist.")
        available = ort.get_available_providers()
        chosen: List[str] = list(providers) if providers else [p for p in PREFERRED_PROVIDERS if p in available]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=chosen)
        except Exception as exc:
            raise InvalidInputError(f"{path} is not a loadable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}).") from None
        props: Dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        if ONNX_METADATA_KEY not in props:
            raise InvalidInputError(f"{path} has no '{ONNX_METADATA_KEY}' metadata; export it with 'edge-reid export'.")
        meta = ModelMeta.from_json(props[ONNX_METADATA_KEY], source=f"ONNX model {path}")
        precision = props.get("edge_reid.precision", "fp32")
        flavour = props.get("edge_reid.int8_flavour")
        if flavour:
            precision = f"{precision}-{flavour}"
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.providers = self.session.get_providers()
        super().__init__(path, meta, precision=precision, device=_DEVICE.get(self.providers[0], self.providers[0]))

    def _infer(self, batch: np.ndarray, extras: Dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch, **extras})[0]
