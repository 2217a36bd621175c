"""Build a TensorRT engine from an exported ONNX graph (TensorRT imported lazily).

Precision comes from the graph: an FP16 graph or a Q/DQ INT8 graph (``trt`` flavour). On
TensorRT 10.x the builder also sets the FP16 / INT8 flags so that TensorRT may pick those
kernels; on TensorRT 11+ the flags and the calibrator API are gone and the network is created
strongly typed (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``), so the graph's types rule.

Every build: the ONNX parser with its errors reported node by node, one optimisation profile on
the batch axis (min / opt / max), a workspace limit, a timing cache file reused across builds
(same TensorRT version), optional DLA core with GPU fallback, the engine written atomically and
its JSON side file (TensorRT version, GPU, compute capability, precision, profile, source ONNX
SHA-256, ModelMeta) beside it.

Jetson notes:

* Build on the device that will run the engine (engines are tied to the GPU and TensorRT
  version; JetPack 6 ships TensorRT 10.3, JetPack 5 ships 8.5/8.6). Copy the ONNX, not engines.
* Orin AGX / NX have DLA cores: ``dla_core=0`` (or 1) puts supported layers on the DLA and
  falls back to the GPU for the rest (``GPU_FALLBACK``); DLA needs FP16 or INT8. The engine is
  then tied to that core.
* Use a small workspace (``workspace_mb=512``) on 8 GB boards, and keep the timing cache file
  between builds: it turns a 10-minute rebuild into a minute.
* The ``trtexec`` equivalent of a default FP16 build::

      trtexec --onnx=model_fp16.onnx --saveEngine=model_fp16.engine --fp16 \\
              --minShapes=images:1x3x256x128 --optShapes=images:8x3x256x128 \\
              --maxShapes=images:32x3x256x128 --memPoolSize=workspace:1024M \\
              --timingCacheFile=timing.cache [--useDLACore=0 --allowGPUFallback]

  (INT8 Q/DQ graphs: ``--int8`` on 10.x; ``--stronglyTyped`` on 11+.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from edge_reid.deploy.engine_meta import EngineInfo, sha256_file, write_side_file
from edge_reid.errors import EdgeReidError, InvalidInputError, MissingDependencyError
from edge_reid.utils.atomic import atomic_path, atomic_write

log = logging.getLogger(__name__)


def import_tensorrt() -> Any:
    """``import tensorrt`` or one sentence saying it is missing."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(
            "TensorRT is not installed here; install it on a machine with an NVIDIA GPU "
            "('pip install tensorrt') or use the onnxruntime backend."
        ) from None
    return tensorrt


def trt_major(trt: Any) -> int:
    """Major version of the installed TensorRT."""
    return int(str(trt.__version__).split(".")[0])


def gpu_identity() -> Tuple[str, str]:
    """(GPU name, compute capability 'major.minor') of device 0 via cuda-python; clear error without one."""
    cudart = import_cudart()
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        raise MissingDependencyError("No CUDA GPU is visible on this machine; TensorRT engines need one.")
    err, prop = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        raise MissingDependencyError(f"Cannot query the CUDA GPU ({err}).")
    name = prop.name.decode(errors="replace").rstrip("\x00") if isinstance(prop.name, bytes) else str(prop.name)
    return name, f"{prop.major}.{prop.minor}"


def import_cudart() -> Any:
    """The CUDA runtime bindings of cuda-python (new and old module layouts)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            raise MissingDependencyError(
                "cuda-python is not installed; install it with 'pip install cuda-python' to use TensorRT engines."
            ) from None
    return cudart


@dataclass
class BuildOptions:
    """What a TensorRT build is asked for."""

    batch_min: int = 1
    batch_opt: int = 8
    batch_max: int = 32
    workspace_mb: int = 1024
    timing_cache: Optional[Path] = None
    dla_core: Optional[int] = None
    builder_optimization_level: Optional[int] = None


class TensorRTBuilder:
    """ONNX graph -> serialized engine + side file, adapting to TensorRT 10.x or 11+."""

    def __init__(self, options: Optional[BuildOptions] = None, verbose: bool = False) -> None:
        self.trt = import_tensorrt()
        self.options = options or BuildOptions()
        self.logger = self.trt.Logger(self.trt.Logger.VERBOSE if verbose else self.trt.Logger.WARNING)
        self.strongly_typed = trt_major(self.trt) >= 11

    def _parse(self, builder: Any, onnx_path: Path) -> Tuple[Any, Any]:
        trt = self.trt
        flags = 0
        if self.strongly_typed:
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = []
            for i in range(parser.num_errors):
                err = parser.get_error(i)
                where = f" at node {err.node()} ({err.node_name()}, {err.node_operator()})" if hasattr(err, "node_name") else ""
                errors.append(f"{err.desc()}{where}")
            raise InvalidInputError(f"TensorRT cannot parse {onnx_path}: " + " | ".join(errors[:5]) + ".")
        return network, parser

    def _configure(self, builder: Any, network: Any, precision: str) -> Any:
        trt, opt = self.trt, self.options
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(opt.workspace_mb) << 20)
        if opt.builder_optimization_level is not None:
            config.builder_optimization_level = int(opt.builder_optimization_level)
        if not self.strongly_typed:  # 10.x: precision flags let TensorRT use the graph's FP16 / Q/DQ types
            if precision in ("fp16", "int8"):
                config.set_flag(trt.BuilderFlag.FP16)
            if precision == "int8":
                config.set_flag(trt.BuilderFlag.INT8)
        if opt.dla_core is not None:
            if builder.num_DLA_cores <= opt.dla_core:
                raise MissingDependencyError(
                    f"DLA core {opt.dla_core} was requested but this device has {builder.num_DLA_cores} DLA cores."
                )
            config.default_device_type = trt.DeviceType.DLA
            config.DLA_core = int(opt.dla_core)
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        profile = builder.create_optimization_profile()
        inp = network.get_input(0)
        _, c, h, w = tuple(inp.shape)
        if not (1 <= opt.batch_min <= opt.batch_opt <= opt.batch_max):
            raise InvalidInputError(
                f"The batch profile must satisfy 1 <= min <= opt <= max; got {opt.batch_min}/{opt.batch_opt}/{opt.batch_max}."
            )
        profile.set_shape(inp.name, (opt.batch_min, c, h, w), (opt.batch_opt, c, h, w), (opt.batch_max, c, h, w))
        for index in range(1, network.num_inputs):  # per-image ids (camera_ids, modality): one value per image
            profile.set_shape(network.get_input(index).name, (opt.batch_min,), (opt.batch_opt,), (opt.batch_max,))
        config.add_optimization_profile(profile)
        return config

    def _load_timing_cache(self, config: Any) -> Any:
        path = self.options.timing_cache
        blob = path.read_bytes() if path is not None and path.is_file() else b""
        cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            log.info("Timing cache %s was made by another TensorRT; starting a new one.", path)
            cache = config.create_timing_cache(b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
        return cache

    def _save_timing_cache(self, config: Any) -> None:
        path = self.options.timing_cache
        if path is None:
            return
        data = config.get_timing_cache().serialize()
        with atomic_write(path, "wb") as handle:
            handle.write(bytes(data))

    def build(self, onnx_path: Union[str, Path], engine_path: Union[str, Path]) -> EngineInfo:
        """Build ``onnx_path`` into ``engine_path`` (atomically) and write its side file."""
        from edge_reid.deploy.onnx_export import KEY_FLAVOUR, KEY_PRECISION, load_onnx, read_metadata

        onnx_path, engine_path = Path(onnx_path), Path(engine_path)
        proto = load_onnx(onnx_path)
        meta, props = read_metadata(proto, source=f"ONNX model {onnx_path}")
        precision = props.get(KEY_PRECISION, "fp32")
        flavour = props.get(KEY_FLAVOUR)
        if precision == "int8" and flavour != "trt":
            raise InvalidInputError(
                f"{onnx_path} is the '{flavour}' INT8 flavour; TensorRT needs the 'trt' flavour (symmetric S8)."
            )
        gpu_name, capability = gpu_identity()
        builder = self.trt.Builder(self.logger)
        network, _parser = self._parse(builder, onnx_path)
        config = self._configure(builder, network, precision)
        self._load_timing_cache(config)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise EdgeReidError(f"TensorRT failed to build an engine from {onnx_path}; rerun with --verbose for its log.")
        self._save_timing_cache(config)
        with atomic_path(engine_path) as tmp:
            tmp.write_bytes(bytes(serialized))
        opt = self.options
        info = EngineInfo(
            tensorrt_version=str(self.trt.__version__), gpu_name=gpu_name, compute_capability=capability,
            precision=precision, profile={"min": opt.batch_min, "opt": opt.batch_opt, "max": opt.batch_max},
            source_onnx_sha256=sha256_file(onnx_path), meta=meta.to_dict(), int8_flavour=flavour,
            strongly_typed=self.strongly_typed, dla_core=opt.dla_core,
        )
        write_side_file(engine_path, info)
        return info


def tensorrt_available() -> Optional[str]:
    """None when TensorRT and a GPU are usable here, else the sentence saying why not."""
    try:
        import_tensorrt()
        gpu_identity()
    except MissingDependencyError as exc:
        return str(exc)
    return None


def build_engine(onnx_path: Union[str, Path], engine_path: Union[str, Path], **options: Any) -> Dict[str, Any]:
    """Convenience wrapper: build with :class:`BuildOptions` ``options``; returns the side-file dict."""
    return TensorRTBuilder(BuildOptions(**options)).build(onnx_path, engine_path).to_dict()
