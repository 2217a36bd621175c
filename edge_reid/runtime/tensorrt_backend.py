"""The TensorRT backend: a serialized engine plus its side file, buffers via cuda-python.

Loading checks the side file against the installed TensorRT version and the visible GPU and
refuses a mismatch in one sentence. Batches larger than the engine's profile maximum are run
in chunks. No torch import: this is the Jetson path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from edge_reid.deploy.engine_meta import check_compatible, read_side_file
from edge_reid.deploy.trt_builder import gpu_identity, import_cudart, import_tensorrt
from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.runtime.base import BACKENDS, Embedder


def _check(result: Any) -> Any:
    """Unpack a cuda-python call's (error, value...) tuple; raise on a CUDA error."""
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise EdgeReidError(f"A CUDA runtime call failed with error {int(err)} ({err}).")
    return rest[0] if len(rest) == 1 else (tuple(rest) if rest else None)


@BACKENDS.register("tensorrt")
class TensorRTEmbedder(Embedder):
    """Runs an engine built by ``edge-reid build`` on the GPU it was built for."""

    backend = "tensorrt"

    def __init__(self, path: Union[str, Path], **_: object) -> None:
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"Engine {path} does not exist.")
        info = read_side_file(path)
        trt = import_tensorrt()
        gpu_name, capability = gpu_identity()
        check_compatible(info, str(trt.__version__), gpu_name, capability, engine_path=path)
        self._trt = trt
        self._cudart = import_cudart()
        self.info = info
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise InvalidInputError(f"Engine {path} is corrupt or truncated; rebuild it with 'edge-reid build'.")
        self._runtime, self.engine = runtime, engine
        self.context = engine.create_execution_context()
        self.input_name, self.output_name = info.input_name, info.output_name
        self.max_batch = int(info.profile.get("max", 1))
        self.stream = _check(self._cudart.cudaStreamCreate())
        self._buffers: Dict[str, Any] = {}
        self._capacity = 0
        super().__init__(path, info.model_meta(), precision=info.precision,
                         device=f"cuda:0 ({gpu_name})" + (f" DLA{info.dla_core}" if info.dla_core is not None else ""))

    def _ensure_buffers(self, batch: int) -> None:
        if batch <= self._capacity:
            return
        self._free()
        h, w = self.meta.input_size
        sizes = {self.input_name: batch * 3 * h * w * 4, self.output_name: batch * self.meta.embedding_dim * 4,
                 **{name: batch * 8 for name in tuple(self.meta.inputs)[1:]}}  # int64 (or int32) ids
        for name, nbytes in sizes.items():
            self._buffers[name] = _check(self._cudart.cudaMalloc(nbytes))
            self.context.set_tensor_address(name, int(self._buffers[name]))
        self._capacity = batch

    def _id_dtype(self, name: str) -> Any:
        """int32 where TensorRT turned an int64 graph input into int32 (TensorRT 8), else int64."""
        return np.int32 if self.engine.get_tensor_dtype(name) == self._trt.DataType.INT32 else np.int64

    def _infer(self, batch: np.ndarray, inputs: Optional[Dict[str, np.ndarray]] = None) -> np.ndarray:
        extras = inputs or {}
        cudart = self._cudart
        out = np.empty((len(batch), self.meta.embedding_dim), dtype=np.float32)
        for start in range(0, len(batch), self.max_batch):
            chunk = np.ascontiguousarray(batch[start:start + self.max_batch], dtype=np.float32)
            n = len(chunk)
            self._ensure_buffers(min(len(batch), self.max_batch))
            self.context.set_input_shape(self.input_name, tuple(chunk.shape))
            _check(cudart.cudaMemcpyAsync(self._buffers[self.input_name], chunk.ctypes.data, chunk.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
            ids = {k: np.ascontiguousarray(v[start:start + n], dtype=self._id_dtype(k)) for k, v in extras.items()}
            for name, values in ids.items():
                self.context.set_input_shape(name, (n,))
                _check(cudart.cudaMemcpyAsync(self._buffers[name], values.ctypes.data, values.nbytes,
                                              cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
            if not self.context.execute_async_v3(int(self.stream)):
                raise EdgeReidError("TensorRT failed to run the engine on this batch.")
            result = out[start:start + n]
            _check(cudart.cudaMemcpyAsync(result.ctypes.data, self._buffers[self.output_name], result.nbytes,
                                          cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
            _check(cudart.cudaStreamSynchronize(self.stream))
        return out

    def _free(self) -> None:
        for ptr in self._buffers.values():
            self._cudart.cudaFree(ptr)
        self._buffers.clear()
        self._capacity = 0

    def __del__(self) -> None:  # pragma: no cover - needs a GPU
        try:
            self._free()
        except Exception:
            pass
