"""The AOTInductor backend: a ``.pt2`` package built by ``build --format aoti``, run without the model code.

Before the package's library is loaded, its metadata (read from the archive) is checked: the
edge-reid and PyTorch versions that built it, the device it was compiled for (and on a CPU the
instruction set), so a package that cannot run here is one sentence instead of a crash. Batches
larger than the package's dynamic-batch maximum are run in chunks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from edge_reid.deploy.aoti_package import check_device, check_gpu, check_torch_version, read_package_info
from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.runtime.base import BACKENDS, Embedder


def _check_cpu_isa(path: Path, built: str) -> None:
    """Refuse a CPU package compiled for vector instructions this CPU lacks (it would die on SIGILL)."""
    try:
        from torch._inductor.codecache import get_device_information

        here = str(get_device_information("cpu").get("AOTI_CPU_ISA", ""))
    except Exception:  # an internal helper of torch: without it, let the loader decide
        return
    missing = [isa for isa in built.split() if isa and isa not in here.split()]
    if missing:
        raise InvalidInputError(f"Package {path} was compiled for a CPU with {built}, but this CPU offers "
                                f"{here or 'no vector extensions'}; build the package on this machine.")


@BACKENDS.register("aoti")
class AotiEmbedder(Embedder):
    """Runs an edge-reid AOTInductor package on the device it was compiled for (``device`` may name it)."""

    backend = "aoti"

    def __init__(self, path: Union[str, Path], device: Optional[str] = None, threads: int = 0, **_: object) -> None:
        path = Path(path)
        info = read_package_info(path)
        try:
            import torch
        except ImportError:
            raise MissingDependencyError("The aoti backend needs PyTorch; install it or use onnxruntime/tensorrt.") from None
        check_torch_version(info, torch.__version__)
        device = check_device(info, device or "", torch.cuda.is_available())
        if info.device == "cpu":
            _check_cpu_isa(path, info.get("AOTI_CPU_ISA"))
        if threads:
            torch.set_num_threads(int(threads))
        index = int(device.split(":")[1]) if ":" in device else -1
        if info.device == "cuda":
            major, minor = torch.cuda.get_device_capability(max(index, 0))
            check_gpu(info, torch.cuda.get_device_name(max(index, 0)), f"{major}.{minor}")
        try:
            self.runner = torch._inductor.aoti_load_package(str(path), device_index=index)
        except Exception as exc:  # the C++ loader's message, first line only
            raise InvalidInputError(f"AOTInductor could not load {path} ({type(exc).__name__}: "
                                    f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else 'no detail'}).") from None
        self._torch = torch
        self.info = info
        self.max_batch = int(info.get("edge_reid.max_batch") or 0) or None
        self.fusion = info.fusion
        super().__init__(path, info.model_meta(), precision=info.precision,
                         device=device if info.device == "cuda" else "cpu")

    def _run(self, x: Any, *extra: Any) -> np.ndarray:
        out = self.runner(x, *extra)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out.float().cpu().numpy()

    def _infer(self, batch: np.ndarray, inputs: Optional[Dict[str, np.ndarray]] = None) -> np.ndarray:
        """Run the package; the checked extra inputs (int64, one per image) in ``meta.inputs`` order."""
        torch = self._torch
        given = inputs or {}
        names = tuple(getattr(self.meta, "inputs", ("images",)))[1:]
        missing = [n for n in names if given.get(n) is None]
        if missing:
            raise InvalidInputError(f"Model {self.meta.model} needs the input(s) {missing}; pass them to embed().")
        step = self.max_batch or len(batch)
        outs = []
        with torch.inference_mode():
            for start in range(0, len(batch), step):
                x = torch.from_numpy(np.ascontiguousarray(batch[start:start + step])).to(self.device)
                extra = [torch.as_tensor(np.asarray(given[n], dtype=np.int64)[start:start + step], device=self.device)
                         for n in names]
                outs.append(self._run(x, *extra))
        return np.concatenate(outs, axis=0)
