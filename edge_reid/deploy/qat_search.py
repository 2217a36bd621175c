"""The float set of a QAT model that started with every layer quantized (``qat: start: all``).

Post-training INT8 chooses its float layers on the original weights, where every-layer INT8 may
be far from the gate; QAT can train most of that loss away. So with ``start: all`` every layer is
fake-quantized during fine-tuning, and only then does the sensitivity analysis
(:mod:`edge_reid.deploy.int8_sensitivity`) choose which layers go back to float: on the fine-tuned
graph, with the learned steps fixed in every trial (the same ``TensorQuantOverrides`` and, in the
TensorRT flavour, the inputs-only Q/DQ placement as the export), cosines measured to the original
FP32 graph; the layers are ranked on the CPU flavour. A layer that goes back to float takes its
original weights again (its fine-tuned ones were trained to absorb its own quantization: measured on
ResNet50, every layer back in float with the fine-tuned weights reached only cosine 0.909 to FP32). Layers with no PyTorch module (never fake-quantized) stay float throughout. The table
of trials is ``int8_qat_sensitivity.csv`` beside the artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

from edge_reid.deploy.int8 import int8_metadata, write_qdq
from edge_reid.deploy.int8_sensitivity import SensitivityAnalysis, SensitivityResult, choose_float_nodes, write_table
from edge_reid.deploy.onnx_export import OnnxExporter, load_onnx, read_metadata, save_onnx, set_metadata
from edge_reid.deploy.qat_layers import quantize_inputs_only
from edge_reid.runtime.inputs import example_ids

TABLE_NAME = "int8_qat_sensitivity.csv"


def with_original_weights(tuned: Any, original: Any, nodes: Sequence[str]) -> Any:
    """``tuned`` (a prepared graph) with the weights and biases of ``nodes`` taken from ``original`` (the same
    graph before fine-tuning): a layer back in float is the FP32 layer again."""
    from onnx import numpy_helper

    inits = {t.name: t for t in tuned.graph.initializer}
    source = {t.name: t for t in original.graph.initializer}
    theirs = {n.name: n for n in original.graph.node}
    wanted = set(nodes)
    for node in (n for n in tuned.graph.node if n.name in wanted):
        for mine, other in zip(node.input[1:3], theirs[node.name].input[1:3]):
            if mine in inits and other in source:
                inits[mine].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(source[other]), mine))
    return tuned


def qat_writer(qat: Any, cache: Path) -> Callable[..., Path]:
    """A trial writer for :class:`SensitivityAnalysis` that fixes ``qat``'s learned steps, as its export does,
    and gives the layers in float their original weights, as :meth:`QatModel.float_model` does."""
    original = load_onnx(qat.prepared)

    def write(prepared: Path, out: Path, flavour: str, float_nodes: Sequence[str]) -> Path:
        mixed = save_onnx(with_original_weights(load_onnx(prepared), original, float_nodes), out.with_suffix(".mixed.onnx"))
        path = write_qdq(mixed, out, qat.calibration, flavour, float_nodes, cache,
                         overrides=qat.overrides(flavour, float_nodes),
                         extras=example_ids(qat.meta, len(qat.calibration)))
        if flavour == "trt":
            save_onnx(quantize_inputs_only(load_onnx(path)), path)
        mixed.unlink()
        return path

    return write


def export_searched(analysis: SensitivityAnalysis, float_nodes: Sequence[str], outputs: Dict[str, Union[str, Path]],
                    extra: Dict[str, str]) -> Dict[str, Path]:
    """Write each flavour exactly as the search measured it (same graph, ranges, learned steps) with the
    INT8 metadata :class:`Int8Quantizer` records."""
    meta, _ = read_metadata(load_onnx(analysis.prepared), source="the fine-tuned graph")
    floats = [*analysis.fixed_float, *float_nodes]
    written = {}
    for flavour, out in outputs.items():
        model = load_onnx(analysis.quantized(float_nodes, flavour))
        set_metadata(model, meta, precision="int8",
                     **int8_metadata(flavour, len(analysis.calibration), "Percentile", floats, "auto", extra))
        written[flavour] = save_onnx(model, out)
    return written


def qat_float_nodes(qat: Any, reference: Optional[Union[str, Path]], eval_set: Any, min_cosine: float, threads: int,
                    out_dir: Union[str, Path], say: Callable[[str], None] = print,
                    outputs: Optional[Dict[str, Union[str, Path]]] = None,
                    extra: Optional[Dict[str, str]] = None) -> SensitivityResult:
    """Choose the float layers of the fine-tuned ``qat`` model (sets ``qat.float_nodes``); writes the table,
    and ``outputs`` (flavour -> path), the chosen graphs exactly as measured (``result.artifacts``)."""
    work = Path(qat.work) / "qat_search"
    work.mkdir(parents=True, exist_ok=True)
    tuned = OnnxExporter().export(qat.float_model(), qat.meta, work / "tuned_fp32.onnx").path
    # ranked on the CPU flavour (the one whose speed the float set decides); every decision checks both
    analysis = SensitivityAnalysis(tuned, qat.calibration, work, eval_set, min_cosine, threads=threads,
                                   flavours=("cpu", "trt"),
                                   reference=reference or Path(qat.work) / "folded_fp32.onnx",
                                   candidates=list(qat.node_to_module), writer=qat_writer(qat, work))
    say(f"QAT sensitivity: {len(analysis.nodes)} fake-quantized layers in {len(analysis.groups)} groups.")
    result = choose_float_nodes(analysis, say=say)
    write_table(result, Path(out_dir) / TABLE_NAME, len(analysis.nodes) + len(analysis.fixed_float))
    qat.float_nodes = sorted(set(analysis.fixed_float) | set(result.float_nodes))
    say(f"QAT sensitivity: {len(result.float_nodes)} of {len(analysis.nodes)} layer(s) back in float after "
        f"{len(result.trials)} trials ({result.seconds:.0f} s); table {result.table}.")
    result.artifacts = export_searched(analysis, result.float_nodes, outputs, extra or {}) if outputs else {}
    return result
