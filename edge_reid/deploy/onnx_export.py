"""Export a ReID model (eval mode) to one self-contained ONNX file with its metadata.

The graph contract, for every model and precision:

* input ``images``: float32 N x 3 x H x W, RGB in [0, 1] (normalisation is inside the graph),
  then the extra inputs ``meta.inputs`` names, in order (``modality``, ``camera_ids``: int64 N),
* output ``embeddings``: float32 N x D, L2-normalised,
* a dynamic batch axis (``batch``) so that TensorRT profiles and ORT accept any crop count,
* ``metadata_props[ONNX_METADATA_KEY]`` = the :class:`~edge_reid.metadata.ModelMeta` JSON, plus
  a few flat keys (``edge_reid.precision``, ``edge_reid.int8_flavour``, ...) for quick reading.

Exporter choice (measured on this project's CPU, ResNet50 at 64x32, torch 2.x): the TorchScript
exporter (``dynamo=False``) writes a clean opset-17 graph in ~3 s; the dynamo exporter takes
~8 s and cannot down-convert its opset-18 output to 17 (``axes`` inputs). Opset 17 is what
TensorRT 8.6 / 10.x (JetPack 5 and 6) parse, so the TorchScript exporter is the default and
``dynamo=True`` is an option (it then keeps opset 18, which TensorRT 10.x also parses).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Tuple, Union

from edge_reid.errors import InvalidInputError, MissingDependencyError
from edge_reid.metadata import ONNX_METADATA_KEY, ModelMeta
from edge_reid.utils.atomic import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    import onnx
    import torch

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
BATCH_AXIS = "batch"
DEFAULT_OPSET = 17
#: protobuf cannot serialise a single message above 2 GB; larger models get external data.
PROTOBUF_LIMIT = 2 * 1024**3

#: Flat metadata keys written beside the full JSON (readers use the JSON).
KEY_PRECISION = "edge_reid.precision"
KEY_FLAVOUR = "edge_reid.int8_flavour"
KEY_MODEL = "edge_reid.model"
KEY_INPUT_SIZE = "edge_reid.input_size"
KEY_EMBEDDING_DIM = "edge_reid.embedding_dim"


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a dependency of the package
        raise MissingDependencyError("The onnx package is not installed; install it with 'pip install onnx'.") from None
    return onnx


def set_metadata(model: "onnx.ModelProto", meta: ModelMeta, precision: str, **extra: str) -> None:
    """Store ``meta`` (full JSON) and flat keys (precision, flavour, ...) in ``metadata_props``."""
    values: Dict[str, str] = {
        ONNX_METADATA_KEY: meta.to_json(),
        KEY_MODEL: meta.model,
        KEY_INPUT_SIZE: "x".join(str(v) for v in meta.input_size),
        KEY_EMBEDDING_DIM: str(meta.embedding_dim),
        KEY_PRECISION: precision,
    }
    values.update({k if k.startswith("edge_reid.") else f"edge_reid.{k}": str(v) for k, v in extra.items()})
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    for prop in kept:
        model.metadata_props.add(key=prop.key, value=prop.value)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)


def metadata_props(model: "onnx.ModelProto") -> Dict[str, str]:
    """``metadata_props`` as a plain dict."""
    return {p.key: p.value for p in model.metadata_props}


def read_metadata(model: "onnx.ModelProto", source: str = "ONNX model") -> Tuple[ModelMeta, Dict[str, str]]:
    """The :class:`ModelMeta` and all flat keys stored in an exported graph."""
    props = metadata_props(model)
    if ONNX_METADATA_KEY not in props:
        raise InvalidInputError(f"The {source} has no '{ONNX_METADATA_KEY}' metadata; export it with edge-reid.")
    return ModelMeta.from_json(props[ONNX_METADATA_KEY], source=source), props


def load_onnx(path: Union[str, Path], load_weights: bool = True) -> "onnx.ModelProto":
    """Load an ONNX file; a missing, truncated or non-ONNX file is one clear sentence."""
    onnx = _require_onnx()
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"ONNX file {path} does not exist.")
    try:
        model = onnx.load(str(path), load_external_data=load_weights)
    except Exception as exc:
        raise InvalidInputError(f"{path} is not a readable ONNX model (corrupt or truncated: {type(exc).__name__}).") from None
    if not model.graph.node:
        raise InvalidInputError(f"{path} is not a readable ONNX model (its graph is empty).")
    return model


def save_onnx(model: "onnx.ModelProto", path: Union[str, Path]) -> Path:
    """Write ``model`` atomically as one file (external data only above protobuf's 2 GB limit)."""
    onnx = _require_onnx()
    path = Path(path)
    large = model.ByteSize() > PROTOBUF_LIMIT
    with atomic_path(path) as tmp:
        if large:
            onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                            location=path.name + ".data")
        else:
            onnx.save_model(model, str(tmp))
    return path


def graph_opset(model: "onnx.ModelProto") -> int:
    """The default-domain opset a graph was written for."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


@dataclass
class ExportResult:
    """Where the ONNX file went and how it was made."""

    path: Path
    meta: ModelMeta
    opset: int
    simplified: bool
    exporter: str


class OnnxExporter:
    """Exports a :class:`~edge_reid.models.base.ReIDModel` to the ONNX graph contract above."""

    def __init__(self, opset: int = DEFAULT_OPSET, simplify: bool = True, dynamo: bool = False) -> None:
        self.opset = int(opset)
        self.simplify = simplify
        self.dynamo = dynamo

    def to_proto(self, model: "torch.nn.Module", meta: ModelMeta, batch: int = 2) -> Tuple["onnx.ModelProto", bool]:
        """Trace ``model`` (in eval mode, on the CPU) and return (graph with metadata, simplified?)."""
        import tempfile

        import torch

        from edge_reid.runtime.inputs import example_ids

        onnx = _require_onnx()
        model = model.eval().cpu()
        height, width = meta.input_size
        names = list(getattr(meta, "inputs", (INPUT_NAME,)))
        extra = names[1:]  # per-image ids (camera_ids, modality) as int64 N, valid for the model
        ids = example_ids(meta, batch)
        args = (torch.rand(batch, 3, height, width),) + tuple(torch.from_numpy(ids[name]) for name in extra)
        if extra:
            model = _PositionalInputs(model, extra)
        with tempfile.TemporaryDirectory(prefix="edge-reid-export.") as tmp:
            out = Path(tmp) / "model.onnx"
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self.dynamo:
                    dim = torch.export.Dim(BATCH_AXIS, min=1, max=4096)
                    torch.onnx.export(
                        model, args, str(out), input_names=names, output_names=[OUTPUT_NAME],
                        dynamic_shapes=tuple({0: dim} for _ in names), opset_version=self.opset, dynamo=True,
                        external_data=False, optimize=True, verbose=False,
                    )
                else:
                    torch.onnx.export(
                        model, args, str(out), input_names=names, output_names=[OUTPUT_NAME],
                        dynamic_axes={**{n: {0: BATCH_AXIS} for n in names}, OUTPUT_NAME: {0: BATCH_AXIS}},
                        opset_version=self.opset, do_constant_folding=True, dynamo=False,
                    )
            proto = onnx.load(str(out), load_external_data=True)
        simplified = False
        if self.simplify:
            from edge_reid.deploy.simplify import simplify_onnx

            proto, simplified = simplify_onnx(proto)
        _check_io(proto, names)
        set_metadata(proto, meta, precision="fp32", opset=str(graph_opset(proto)))
        return proto, simplified

    def export(self, model: "torch.nn.Module", meta: ModelMeta, path: Union[str, Path]) -> ExportResult:
        """Export ``model`` to ``path`` (atomically) and return where and how."""
        proto, simplified = self.to_proto(model, meta)
        save_onnx(proto, path)
        return ExportResult(Path(path), meta, graph_opset(proto), simplified, "dynamo" if self.dynamo else "torchscript")


class _PositionalInputs:
    """Calls ``model(images, name=tensor, ...)`` from positional inputs (what the exporter traces)."""

    def __new__(cls, model: Any, names: Any) -> Any:
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, images: Any, *extra: Any) -> Any:
                return self.model(images, **dict(zip(names, extra)))

        return Wrapper().eval()


def _check_io(proto: "onnx.ModelProto", names: Any = (INPUT_NAME,)) -> None:
    """The exported graph must follow the I/O contract (input names in order, dynamic batch)."""
    inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if [i.name for i in inputs] != list(names) or [o.name for o in proto.graph.output] != [OUTPUT_NAME]:
        raise RuntimeError(f"exported graph has inputs {[i.name for i in inputs]} and outputs "
                           f"{[o.name for o in proto.graph.output]}, expected {list(names)} -> ['{OUTPUT_NAME}']")
    if any(i.type.tensor_type.shape.dim[0].HasField("dim_value") for i in inputs):
        raise RuntimeError("exported graph lost its dynamic batch axis")


def export_checkpoint(
    checkpoint: Union[str, Path],
    path: Union[str, Path],
    opset: int = DEFAULT_OPSET,
    simplify: bool = True,
    dynamo: bool = False,
) -> ExportResult:
    """Export the model stored in an edge-reid checkpoint to ``path``."""
    from edge_reid.models.checkpoint import load_model_from_checkpoint

    model, meta, _ = load_model_from_checkpoint(checkpoint)
    return OnnxExporter(opset, simplify, dynamo).export(model, meta, path)


def meta_with(meta: ModelMeta, **changes: Any) -> ModelMeta:
    """A copy of ``meta`` with some fields changed (for derived artifacts)."""
    data = meta.to_dict()
    data.update(changes)
    return ModelMeta.from_dict(data)


def describe(model: "onnx.ModelProto") -> Mapping[str, Any]:
    """A short summary of a graph: opset, node count, op types, precision keys."""
    props = metadata_props(model)
    return {
        "opset": graph_opset(model),
        "nodes": len(model.graph.node),
        "op_types": sorted({n.op_type for n in model.graph.node}),
        "precision": props.get(KEY_PRECISION),
        "int8_flavour": props.get(KEY_FLAVOUR),
        "meta": json.loads(props.get(ONNX_METADATA_KEY, "{}")),
    }
