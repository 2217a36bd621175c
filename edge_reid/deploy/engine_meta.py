"""The JSON side file written beside every TensorRT engine, and the check done when loading one.

An engine is tied to the TensorRT version and the GPU it was built on. The side file
(``<engine>.json``) records both, plus the precision, the batch profile, the SHA-256 of the
source ONNX and the :class:`~edge_reid.metadata.ModelMeta`. Loading an engine compares the side
file with the installed TensorRT and the visible GPU and refuses a mismatch in one sentence.

numpy-, torch- and onnx-free: the runtime imports it on a Jetson.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.utils.atomic import atomic_write_json

ENGINE_FORMAT = "edge-reid-tensorrt-engine"
SIDE_SUFFIX = ".json"


def side_file(engine_path: Union[str, Path]) -> Path:
    """Where the side file of ``engine_path`` lives: the engine's name plus ``.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDE_SUFFIX)


def sha256_file(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (identifies the ONNX an engine was built from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class EngineInfo:
    """Everything a loader needs to trust an engine, stored as its side file."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: Dict[str, int]
    source_onnx_sha256: str
    meta: Dict[str, Any]
    int8_flavour: Optional[str] = None
    strongly_typed: bool = False
    dla_core: Optional[int] = None
    input_name: str = "images"
    output_name: str = "embeddings"
    built_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    format: str = ENGINE_FORMAT

    def model_meta(self) -> ModelMeta:
        return ModelMeta.from_dict(self.meta, source="engine side file")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def write_side_file(engine_path: Union[str, Path], info: EngineInfo) -> Path:
    """Write ``info`` atomically beside ``engine_path``."""
    path = side_file(engine_path)
    atomic_write_json(path, info.to_dict())
    return path


def has_side_file(engine_path: Union[str, Path]) -> bool:
    """True when ``engine_path`` has an edge-reid engine side file beside it."""
    path = side_file(engine_path)
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == ENGINE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_side_file(engine_path: Union[str, Path]) -> EngineInfo:
    """Read and validate the side file of ``engine_path``; missing or corrupt is one sentence."""
    path = side_file(engine_path)
    if not path.is_file():
        raise InvalidInputError(f"Engine {engine_path} has no side file {path.name}; rebuild it with 'edge-reid build'.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"Engine side file {path} is not valid JSON ({type(exc).__name__}).") from None
    if not isinstance(data, dict) or data.get("format") != ENGINE_FORMAT:
        raise InvalidInputError(f"{path} is not an edge-reid engine side file.")
    known = set(EngineInfo.__dataclass_fields__)
    required = {"tensorrt_version", "gpu_name", "compute_capability", "precision", "profile",
                "source_onnx_sha256", "meta"}
    missing = sorted(required - set(data))
    if missing:
        raise InvalidInputError(f"Engine side file {path} lacks the keys {missing}.")
    info = EngineInfo(**{k: v for k, v in data.items() if k in known})
    info.model_meta()  # validates the embedded metadata
    return info


def check_compatible(info: EngineInfo, tensorrt_version: str, gpu_name: str, compute_capability: str,
                     engine_path: Union[str, Path] = "the engine") -> None:
    """Refuse an engine built with another TensorRT version or on another GPU, in one sentence."""
    problems = []
    if info.tensorrt_version != tensorrt_version:
        problems.append(f"TensorRT {info.tensorrt_version} (installed: {tensorrt_version})")
    if info.compute_capability != compute_capability or info.gpu_name != gpu_name:
        problems.append(f"GPU {info.gpu_name} with compute capability {info.compute_capability} "
                        f"(this machine: {gpu_name}, {compute_capability})")
    if problems:
        raise InvalidInputError(
            f"Engine {engine_path} was built for " + " and ".join(problems)
            + "; engines only run where they were built, so rebuild it on this machine with 'edge-reid build'."
        )


def verify_engine(engine_path: Union[str, Path]) -> EngineInfo:
    """Check that ``engine_path`` can run here (side file, TensorRT version, GPU); one sentence if not."""
    from edge_reid.deploy.trt_builder import gpu_identity, import_tensorrt
    from edge_reid.errors import MissingDependencyError

    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise InvalidInputError(f"Engine {engine_path} does not exist.")
    info = read_side_file(engine_path)
    try:
        trt = import_tensorrt()
        gpu_name, capability = gpu_identity()
    except MissingDependencyError as exc:
        raise MissingDependencyError(
            f"Engine {engine_path} needs TensorRT {info.tensorrt_version} on {info.gpu_name} "
            f"(compute capability {info.compute_capability}), but {str(exc)[0].lower()}{str(exc)[1:]}"
        ) from None
    check_compatible(info, str(trt.__version__), gpu_name, capability, engine_path)
    return info
