"""INT8 by explicit quantization: calibrate once on real crops, emit two Q/DQ graphs.

* ``trt`` flavour: symmetric signed INT8 activations and weights (zero point 0), per-channel
  weights on the output-channel axis, biases left in float. This is what TensorRT's ONNX
  parser accepts (TensorRT 10.1+ deprecates implicit calibrators; 11 removes them).
* ``cpu`` flavour: unsigned 8-bit activations (asymmetric) and per-channel signed 8-bit
  weights. ONNX Runtime's CPU provider fuses DQ -> Conv -> Q into QLinearConv only for U8
  activations; with S8 symmetric activations it runs DQ + FP32 Conv + Q (slower than FP32).

In the ``cpu`` flavour a ReLU6 between two quantized layers is folded into the next quantization
where that is exact (:mod:`edge_reid.deploy.qdq_fold`; ONNX Runtime would otherwise leave a float
dequantize/quantize pair between the two QLinearConv).

Calibration data come from a folder of images, a dataset split (``edge_reid.data``), or, only
when asked explicitly, random pixels. Ranges are computed once (percentile 99.999 by default)
and cached per activation symmetry (the percentile ranges differ between the two flavours).

What is quantized: Conv, Gemm and MatMul (where TensorRT and ONNX Runtime gain from INT8),
except the layers kept in float. By default (``--int8-keep-float auto``) the build measures which
(:mod:`edge_reid.deploy.int8_sensitivity`) and passes their names to :meth:`Int8Quantizer.quantize`;
named rules (:data:`FLOAT_RULES`) select kinds of layer instead: convolutions at a quarter of the
input resolution or more (``high-res``: the stem and the first stage), convolutions on a pooled
1 x 1 vector (``pooled-gates``, gates such as VisNet's scale attention), ``depthwise`` and
``attention``. Measured on the quick-trained VisNet (64x32, synthetic crops), ``high-res,pooled-gates``
took the TensorRT flavour's min / mean cosine to FP32 from 0.981 / 0.989 (every supported op,
MinMax) to 0.995 / 0.998.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_reid.deploy.int8_calibration import (  # noqa: F401  (also imported from here by callers)
    DEFAULT_CALIB_IMAGES, ArrayCalibrationReader, _as_ort_reader, _quantization_api, calibration_from_folder,
    calibration_from_paths, calibration_from_split, random_calibration)
from edge_reid.deploy.onnx_export import KEY_FLAVOUR, load_onnx, read_metadata, save_onnx, set_metadata
from edge_reid.errors import InvalidInputError
from edge_reid.runtime.inputs import example_ids

if TYPE_CHECKING:  # pragma: no cover
    import onnx

log = logging.getLogger(__name__)

FLAVOURS = ("trt", "cpu")


# ----------------------------------------------------------------------------- quantization


@dataclass
class FlavourSpec:
    """Quantization settings of one Q/DQ flavour."""

    name: str
    activation_signed: bool
    activation_symmetric: bool
    quantize_bias: bool
    description: str


FLAVOUR_SPECS: Dict[str, FlavourSpec] = {
    "trt": FlavourSpec("trt", True, True, False, "S8 symmetric activations and per-channel weights, zero point 0"),
    "cpu": FlavourSpec("cpu", False, False, True, "U8 asymmetric activations, per-channel S8 weights"),
}


QUANTIZED_OP_TYPES = ("Conv", "Gemm", "MatMul")


def _conv_group(node: "onnx.NodeProto") -> int:
    return next((int(a.i) for a in node.attribute if a.name == "group"), 1)


#: Kinds of layer that can be kept in float, by name: (what it selects, predicate on
#: (node, output shape or None, input size, min_fraction)).
FLOAT_RULES: Dict[str, Tuple[str, Callable[..., bool]]] = {
    "high-res": ("convolutions at >= 1/4 of the input height (stem, first stage)",
                 lambda node, shape, size, frac: node.op_type == "Conv" and bool(shape) and len(shape) == 4
                 and shape[2] is not None and shape[2] >= frac * size[0]),
    "pooled-gates": ("convolutions on a pooled 1 x 1 map (attention gates)",
                     lambda node, shape, size, frac: node.op_type == "Conv" and bool(shape) and len(shape) == 4
                     and shape[2] == 1 and shape[3] == 1),
    "depthwise": ("grouped / depthwise convolutions (MobileNet blocks)",
                  lambda node, shape, size, frac: node.op_type == "Conv" and _conv_group(node) > 1),
    "attention": ("MatMul nodes (attention products)",
                  lambda node, shape, size, frac: node.op_type == "MatMul"),
}
DEFAULT_FLOAT_RULES: Tuple[str, ...] = ("high-res", "pooled-gates")
AUTO_FLOAT = "auto"  # --int8-keep-float auto: chosen per model by edge_reid.deploy.int8_sensitivity


def check_float_rules(names: Iterable[str]) -> Tuple[str, ...]:
    """``names`` as a tuple, each a key of :data:`FLOAT_RULES` (else one clear error)."""
    names = tuple(names)
    unknown = [n for n in names if n not in FLOAT_RULES]
    if unknown:
        raise InvalidInputError(f"Unknown INT8 float rule {unknown[0]!r}; choose from {', '.join(FLOAT_RULES)} or none.")
    return names


def parse_float_rules(text: str) -> Tuple[str, ...]:
    """'high-res,depthwise' -> ('high-res', 'depthwise'); 'none' -> () (quantize every supported op);
    'auto' -> ('auto',) (the sensitivity analysis chooses)."""
    names = tuple(v.strip() for v in str(text).split(",") if v.strip())
    if names == (AUTO_FLOAT,):
        return names
    return () if names in ((), ("none",)) else check_float_rules(names)


def float_sensitive_nodes(model: "onnx.ModelProto", input_size: Tuple[int, int], min_fraction: float = 0.25,
                          rules: Sequence[str] = DEFAULT_FLOAT_RULES) -> List[str]:
    """Names of the nodes kept in float: those any of ``rules`` (keys of :data:`FLOAT_RULES`) selects.

    The defaults keep high-resolution convolutions (output height >= ``min_fraction`` of the
    input's) and convolutions on 1 x 1 maps fed by a global pooling (gates on a pooled vector).
    """
    import onnx

    predicates = [FLOAT_RULES[name][1] for name in check_float_rules(rules)]
    if not predicates:
        return []
    inferred = onnx.shape_inference.infer_shapes(_with_static_input(model, input_size))
    shapes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return [node.name for node in inferred.graph.node
            if any(rule(node, shapes.get(node.output[0]), input_size, min_fraction) for rule in predicates)]


def _with_static_input(model: "onnx.ModelProto", input_size: Tuple[int, int]) -> "onnx.ModelProto":
    """A copy whose image input has a concrete height and width (batch stays symbolic)."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    dims = copy.graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 4:
        dims[2].dim_value, dims[3].dim_value = int(input_size[0]), int(input_size[1])
    return copy


def prepare_for_quantization(fp32_path: Union[str, Path], out: Union[str, Path]) -> Path:
    """ORT's pre-processing (shape inference, graph clean-up) into ``out``; the raw graph on failure."""
    q = _quantization_api()
    try:
        q.quant_pre_process(str(fp32_path), str(out), skip_symbolic_shape=True)
        return Path(out)
    except Exception as exc:  # pre-processing is an optimisation: fall back to the raw graph
        log.info("quant_pre_process failed (%s); quantizing the graph as exported.", type(exc).__name__)
        return Path(fp32_path)


def write_qdq(prepared: Union[str, Path], out: Union[str, Path], calibration: np.ndarray, flavour: str,
              float_nodes: Sequence[str], cache_dir: Union[str, Path], per_channel: bool = True,
              calibrate_method: str = "Percentile", batch_size: int = 16,
              overrides: Optional[Dict[str, list]] = None, extras: Optional[Dict[str, np.ndarray]] = None,
              op_types: Sequence[str] = QUANTIZED_OP_TYPES) -> Path:
    """One Q/DQ flavour of ``prepared`` (nodes in ``float_nodes`` stay float) into ``out``.

    ``extras``: the per-image int64 inputs (camera_ids, modality) fed beside the calibration images.
    ``op_types``: the op types quantized (default :data:`QUANTIZED_OP_TYPES`; others only for
    experiments such as ``benchmarks/int8_speed.py --extra-ops``: the sensitivity groups and QAT's
    fake-quant placement cover the default set only).

    Activation ranges are computed once per symmetry and cached in ``cache_dir`` (the percentile
    ranges differ between the flavours), so later calls with other float sets only rewrite the
    graph. ``overrides`` are ONNX Runtime ``TensorQuantOverrides`` (e.g. QAT's ranges).
    """
    q = _quantization_api()
    spec = FLAVOUR_SPECS[flavour]
    reader = ArrayCalibrationReader(calibration, batch_size, extras=extras)
    extra = {
        "ActivationSymmetric": spec.activation_symmetric,
        "WeightSymmetric": True,
        "QuantizeBias": spec.quantize_bias,
        # symmetric S8 can represent negatives, so Relu/Clip must stay explicit
        "QDQKeepRemovableActivations": spec.activation_symmetric,
    }
    if overrides:
        extra["TensorQuantOverrides"] = overrides
    q.quantize_static(
        str(prepared), str(out), _as_ort_reader(reader),
        quant_format=q.QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=q.QuantType.QInt8 if spec.activation_signed else q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8,
        calibrate_method=getattr(q.CalibrationMethod, calibrate_method),
        op_types_to_quantize=list(op_types),
        nodes_to_exclude=list(float_nodes),
        calibration_cache_path=str(Path(cache_dir) / f"calibration-{calibrate_method}-{spec.activation_symmetric}.json"),
        extra_options=extra,
    )
    if not spec.activation_symmetric:  # the CPU flavour: no float requantization around a bounded activation
        from edge_reid.deploy.qdq_fold import fold_bounded_requantize

        model = load_onnx(out)
        if fold_bounded_requantize(model):
            save_onnx(model, out)
    return Path(out)


class Int8Quantizer:
    """Calibrates an FP32 graph once and writes the requested Q/DQ flavours."""

    def __init__(self, per_channel: bool = True, calibrate_method: str = "Percentile", batch_size: int = 16,
                 keep_float: Sequence[str] = DEFAULT_FLOAT_RULES, op_types: Sequence[str] = QUANTIZED_OP_TYPES) -> None:
        self.op_types = tuple(op_types)
        self.per_channel = per_channel
        self.calibrate_method = calibrate_method
        self.batch_size = batch_size
        self.keep_float = tuple(keep_float) if tuple(keep_float) == (AUTO_FLOAT,) else check_float_rules(keep_float)

    def quantize(
        self,
        fp32_path: Union[str, Path],
        calibration: np.ndarray,
        outputs: Dict[str, Union[str, Path]],
        float_nodes: Optional[Sequence[str]] = None,
        overrides: Optional[Dict[str, list]] = None,
        extra_metadata: Optional[Dict[str, str]] = None,
    ) -> Dict[str, Path]:
        """Quantize ``fp32_path`` into ``outputs[flavour]`` for each flavour; returns the written paths.

        ``float_nodes`` (names) replaces the rule-based selection, e.g. the sensitivity analysis's
        choice (``keep_float=("auto",)`` requires it); the names are recorded in the metadata.
        """
        unknown = sorted(set(outputs) - set(FLAVOUR_SPECS))
        if unknown:
            raise InvalidInputError(f"Unknown INT8 flavour(s) {unknown}; choose from {list(FLAVOURS)}.")
        fp32 = load_onnx(fp32_path)
        meta, _ = read_metadata(fp32, source=f"ONNX model {fp32_path}")
        ArrayCalibrationReader(calibration, self.batch_size)  # an empty set is one clear error, before any work
        # models with per-image ids calibrate over every camera / modality in turn
        extras = example_ids(meta, len(calibration))
        if float_nodes is None:
            if self.keep_float == (AUTO_FLOAT,):
                raise InvalidInputError("--int8-keep-float auto needs the sensitivity analysis's choice of float nodes.")
            excluded = float_sensitive_nodes(fp32, meta.input_size, rules=self.keep_float)
        else:
            excluded = list(float_nodes)
        written: Dict[str, Path] = {}
        with tempfile.TemporaryDirectory(prefix="edge-reid-int8.") as tmp:
            prepared = prepare_for_quantization(fp32_path, Path(tmp) / "prepared.onnx")
            for flavour, out in outputs.items():
                raw = write_qdq(prepared, Path(tmp) / f"{flavour}.onnx", calibration, flavour, excluded, tmp,
                                self.per_channel, self.calibrate_method, self.batch_size, overrides, extras,
                                self.op_types)
                model = load_onnx(raw)
                set_metadata(model, meta, precision="int8", **int8_metadata(
                    flavour, len(calibration), self.calibrate_method, excluded,
                    ",".join(self.keep_float) or "none", extra_metadata))
                written[flavour] = save_onnx(model, out)
        return written


def int8_metadata(flavour: str, calibration_images: int, calibration_method: str, float_nodes: Sequence[str],
                  float_rules: str, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The metadata every INT8 artifact records (flavour, calibration, the layers kept in float), plus ``extra``."""
    return {KEY_FLAVOUR: flavour, "calibration_images": str(calibration_images),
            "calibration_method": calibration_method, "float_nodes": str(len(float_nodes)),
            "float_node_names": ",".join(float_nodes), "float_rules": float_rules, **(extra or {})}


def flavour_of(model: "onnx.ModelProto") -> Optional[str]:
    """The INT8 flavour stored in a graph's metadata (None for FP32/FP16 graphs)."""
    for prop in model.metadata_props:
        if prop.key == KEY_FLAVOUR:
            return prop.value
    return None


def quantize_int8(fp32_path: Union[str, Path], calibration: np.ndarray, out_dir: Union[str, Path],
                  flavours: Iterable[str] = FLAVOURS, stem: str = "model") -> Dict[str, Path]:
    """Write ``<stem>_int8_<flavour>.onnx`` for each flavour into ``out_dir``."""
    out_dir = Path(out_dir)
    outputs: Dict[str, Union[str, Path]] = {f: out_dir / f"{stem}_int8_{f}.onnx" for f in flavours}
    return Int8Quantizer().quantize(fp32_path, calibration, outputs)


def list_flavours() -> List[str]:
    """The Q/DQ flavours this module writes."""
    return list(FLAVOURS)
