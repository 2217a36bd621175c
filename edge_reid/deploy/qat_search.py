"""The float set of a QAT model that started with every layer quantized (``qat: start: all``).

Post-training INT8 chooses its float layers on the original weights, where every-layer INT8 may
be far from the gate; QAT can train most of that loss away. So with ``start: all`` every layer is
fake-quantized during fine-tuning, and only then does the sensitivity analysis
(:mod:`edge_reid.deploy.int8_sensitivity`) choose which layers go back to float: on the fine-tuned
graph, with the learned steps fixed in every trial (the same ``TensorQuantOverrides`` and, in the
TensorRT flavour, the inputs-only Q/DQ placement as the export), cosines measured to the original
FP32 graph; the layers are ranked on the CPU flavour. Layers with no PyTorch module (never fake-quantized) stay float throughout. The table
of trials is ``int8_qat_sensitivity.csv`` beside the artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from edge_reid.deploy.int8 import write_qdq
from edge_reid.deploy.int8_sensitivity import SensitivityAnalysis, SensitivityResult, choose_float_nodes, write_table
from edge_reid.deploy.onnx_export import OnnxExporter, load_onnx, save_onnx
from edge_reid.deploy.qat_layers import quantize_inputs_only
from edge_reid.runtime.inputs import example_ids

TABLE_NAME = "int8_qat_sensitivity.csv"


def qat_writer(qat: Any, cache: Path) -> Callable[..., Path]:
    """A trial writer for :class:`SensitivityAnalysis` that fixes ``qat``'s learned steps, as its export does."""

    def write(prepared: Path, out: Path, flavour: str, float_nodes: Sequence[str]) -> Path:
        path = write_qdq(prepared, out, qat.calibration, flavour, float_nodes, cache,
                         overrides=qat.overrides(flavour, float_nodes),
                         extras=example_ids(qat.meta, len(qat.calibration)))
        if flavour == "trt":
            save_onnx(quantize_inputs_only(load_onnx(path)), path)
        return path

    return write


def qat_float_nodes(qat: Any, reference: Optional[Union[str, Path]], eval_set: Any, min_cosine: float, threads: int,
                    out_dir: Union[str, Path], say: Callable[[str], None] = print) -> SensitivityResult:
    """Choose the float layers of the fine-tuned ``qat`` model (sets ``qat.float_nodes``); writes the table."""
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
    return result
