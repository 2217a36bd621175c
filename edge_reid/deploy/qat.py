"""Quantization-aware training (QAT): fine-tune a checkpoint under the exported Q/DQ arithmetic.

Library choice: PyTorch's own fake-quantize operators (see :mod:`edge_reid.deploy.qat_layers`;
the learned-step one is the LSQ operator of ``torch.ao``'s learnable FakeQuantize). NVIDIA's
Model Optimizer (``nvidia-modelopt``) was tried: importing its torch quantization pulls omegaconf,
pulp, pydantic, huggingface_hub (and its HTTP stack), safetensors and nvidia-ml-py, its
calibration and export target TensorRT-style graphs only, and edge-reid also needs the ONNX Runtime
CPU flavour from the same quantizer as post-training INT8. torch 2.14 no longer ships the pt2e
flow (moved to torchao); torch.ao's remaining eager / FX flows insert their own observers and
export their own QDQ graph, not the graph ONNX Runtime's quantizer writes; only its operators are
used. So:

* QAT starts from the post-training point (``start: ptq``): the sensitivity analysis's float layers
  stay float (not fake-quantized, not quantized at export), every other input starts at its calibrated
  step; or (``start: all``) every layer is fake-quantized and the float set is chosen afterwards on
  the fine-tuned graph (:mod:`edge_reid.deploy.qat_search`);
* BatchNorm layers that follow a convolution are folded into it first (the exported graph has no
  BatchNorm either); the model stays in eval mode (frozen statistics, no dropout);
* each Conv / Gemm / MatMul of the exported graph is matched to its PyTorch module by its weights;
  its weights are fake-quantized per output channel (max |w| / 127, recomputed every step, as at
  export) and its input per tensor, symmetric, with a learned step (LSQ gradient, one step per
  graph tensor, shared by the layers that read it, as they share its QuantizeLinear);
* the loss is the cosine distance to the FP32 model's embedding (distillation: no labels needed,
  and it is what the INT8 gate checks) on crops of the checkpoint's training split;
* export: the fine-tuned float model goes through the same quantizer with every learned step fixed
  (``TensorQuantOverrides``): the TensorRT flavour with S8 zero point 0 and Q/DQ on quantized
  layers' inputs only (``quantize_inputs_only``), exactly the fake-quantized arithmetic; the CPU
  flavour (U8, for ONNX Runtime's fused kernels) with zero point 128 (the same grid of 256 steps), or 0
  on a ReLU's output (the same steps from 0 up, to 255 instead of 127 of them).

Layers with no module (attention products between two activations) stay in float in both.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from edge_reid.deploy.int8 import Int8Quantizer, prepare_for_quantization, write_qdq
from edge_reid.deploy.onnx_export import OnnxExporter, load_onnx, save_onnx
from edge_reid.deploy.qat_layers import (activation_scales, fake_quant_layer_class, fold_batchnorm, log_scale_parameter,
                                         match_modules, quantize_inputs_only, set_module)
from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.runtime.inputs import example_ids

if TYPE_CHECKING:  # pragma: no cover
    from edge_reid.deploy.qat_plan import QatPlan

log = logging.getLogger(__name__)


SMALL_WEIGHT = 1e-2  # a layer whose largest weight is under this gets a proportionally smaller step


@dataclass
class QatSettings:
    """The ``qat`` section of a training config."""

    epochs: int = 2
    lr: float = 1e-5  # weights (Adam)
    scale_lr: float = 1e-2  # activation log-scales (Adam: about a 1 % change of a scale per step at most)
    images: int = 512
    batch_size: int = 32
    #: ptq: start from the post-training float set and keep it; all: fake-quantize every layer, then choose
    #: the float set again by sensitivity on the fine-tuned graph (edge_reid.deploy.qat_search)
    start: str = "ptq"


class QatModel:
    """A folded copy of a model with fake-quantized layers, and how they map onto the ONNX graph.

    ``float_nodes``: the post-training float set (names in ``reference``'s prepared graph, e.g. the
    sensitivity analysis's choice); those layers stay in float here and in the export, and QAT starts
    from the post-training point (same float layers, the calibrated scales).
    """

    def __init__(self, model: Any, meta: ModelMeta, calibration: np.ndarray, work_dir: Union[str, Path],
                 float_nodes: Sequence[str] = (), reference: Optional[Union[str, Path]] = None) -> None:
        import torch

        if calibration is None or len(calibration) == 0:
            raise InvalidInputError("The calibration set is empty; give a folder or split with images.")
        self.meta, self.calibration, self.work = meta, calibration, Path(work_dir)
        self.model = copy.deepcopy(model).eval()
        ids = {k: torch.from_numpy(v) for k, v in example_ids(meta, 2).items()}
        self.folded = fold_batchnorm(self.model, torch.from_numpy(calibration[:2]), ids)
        for p in self.model.parameters():  # only the quantized layers' weights and the steps are trained
            p.requires_grad_(False)
        fp32 = OnnxExporter().export(self.model, meta, self.work / "folded_fp32.onnx").path
        self.prepared = prepare_for_quantization(fp32, self.work / "folded_prepared.onnx")
        graph = load_onnx(self.prepared)
        matched, unmatched = match_modules(self.model, graph)
        chosen = set(translate_nodes(reference, graph, float_nodes, self.work)) if float_nodes else set()
        self.node_to_module = {n: m for n, m in matched.items() if n not in chosen}
        self.float_nodes = sorted(set(unmatched) | chosen)
        extras = example_ids(meta, len(calibration))
        ptq = write_qdq(self.prepared, self.work / "ptq_trt.onnx", calibration, "trt", self.float_nodes, self.work,
                        extras=extras)
        calibrated = activation_scales(load_onnx(ptq))
        nodes = {n.name: n for n in graph.graph.node}
        self.io = {n: (nodes[n].input[0], nodes[n].output[0]) for n in self.node_to_module}
        self.non_negative = non_negative_tensors(graph)
        # one learned scale per quantized tensor, shared by every layer that reads it
        self.log_scales = {t: log_scale_parameter(calibrated[t]) for t, _ in self.io.values() if t in calibrated}
        # the calibrated steps are floors: a learned step may grow, never shrink below the calibration's
        # (learned steps that shrank clipped rare large activations: the TensorRT flavour's worst image
        # fell to cosine 0.920 on ResNet50, 0.983 on BoT, 0.989 on DCS-MobileNetV2, all above 0.99 after PTQ)
        self.log_scale_floors = {t: float(p.detach()[0]) for t, p in self.log_scales.items()}
        wrapper = fake_quant_layer_class()
        self.originals = {m: copy.deepcopy(self.model.get_submodule(m).state_dict()) for m in self.node_to_module.values()}
        for node_name, module_name in self.node_to_module.items():
            layer = self.model.get_submodule(module_name)
            for p in layer.parameters():
                p.requires_grad_(True)
            set_module(self.model, module_name, wrapper(layer, self.log_scales.get(self.io[node_name][0])))

    @property
    def scales(self) -> Dict[str, float]:
        """tensor name -> its current (learned) quantization step, in float32 as the graph stores it."""
        return {t: float(np.float32(np.exp(np.float32(p.detach().numpy()[0])))) for t, p in self.log_scales.items()}

    def scale_parameters(self) -> List[Any]:
        return list(self.log_scales.values())

    def floor_scales(self) -> None:
        """Raise every learned step that fell below its calibrated step back to it (after each update)."""
        for t, p in self.log_scales.items():
            p.data.clamp_(min=self.log_scale_floors[t])

    def weight_groups(self, lr: float) -> List[Dict[str, Any]]:
        """One Adam group per fake-quantized layer: ``lr``, scaled down on a layer whose largest weight is
        under :data:`SMALL_WEIGHT` (Adam's step is about lr whatever the weight's size: on AGW's non-local
        output convs, folded with a near-zero BN scale to weights of ~1e-6, lr 1e-5 took the
        embedding's cosine to FP32 to 0.2)."""
        groups = []
        for name in self.node_to_module.values():
            layer = self.model.get_submodule(name).layer
            size = float(layer.weight.detach().abs().max())
            groups.append({"params": list(layer.parameters()), "lr": lr * min(1.0, size / SMALL_WEIGHT)})
        return groups

    def float_model(self) -> Any:
        """The fine-tuned float model (fake quantization removed, BatchNorm folded); a fine-tuned layer that
        went back to float (``start: all``) has its original weights again (so every layer in float is FP32)."""
        plain = copy.deepcopy(self.model)
        floats = set(self.float_nodes)
        for node, name in self.node_to_module.items():
            layer = plain.get_submodule(name).layer
            if node in floats:
                layer.load_state_dict(self.originals[name])
            set_module(plain, name, layer)
        return plain.eval()

    def overrides(self, flavour: str, float_nodes: Optional[Sequence[str]] = None) -> Dict[str, list]:
        """TensorQuantOverrides fixing every quantized input's scale to the learned one (the inputs of
        layers outside ``float_nodes``, default :attr:`float_nodes`). The CPU flavour's U8 activations
        take zero point 128 (the same grid, -128..127 steps, as S8), or 0 on a non-negative tensor (a
        ReLU's: the same steps from 0 up, 255 of them instead of 127)."""
        floats = set(self.float_nodes if float_nodes is None else float_nodes)
        live = {self.io[n][0] for n in self.node_to_module if n not in floats}
        scales = {t: s for t, s in self.scales.items() if t in live}
        if flavour == "trt":
            zero = {t: np.array(0, dtype=np.int8) for t in scales}
        else:
            zero = {t: np.array(0 if t in self.non_negative else 128, dtype=np.uint8) for t in scales}
        return {t: [{"scale": np.array(s, dtype=np.float32), "zero_point": zero[t]}] for t, s in scales.items()}

    def export(self, outputs: Dict[str, Union[str, Path]], extra: Optional[Dict[str, str]] = None) -> Dict[str, Path]:
        """Write the requested flavours (``trt``, ``cpu``) of the fine-tuned model with the learned scales."""
        fp32 = OnnxExporter().export(self.float_model(), self.meta, self.work / "qat_fp32.onnx").path
        matched, _ = match_modules(self.float_model(), load_onnx(prepare_for_quantization(
            fp32, self.work / "qat_prepared.onnx")))
        if not set(self.node_to_module) <= set(matched):
            raise InvalidInputError("The fine-tuned model's ONNX graph no longer matches its layers; QAT export stopped.")
        quantizer = Int8Quantizer(keep_float=())
        meta = {"qat": "1", **(extra or {})}
        written: Dict[str, Path] = {}
        for flavour, out in outputs.items():
            written.update(quantizer.quantize(fp32, self.calibration, {flavour: out}, float_nodes=self.float_nodes,
                                              overrides=self.overrides(flavour), extra_metadata=meta))
            if flavour == "trt":
                save_onnx(quantize_inputs_only(load_onnx(written[flavour])), written[flavour])
        return written


def non_negative_tensors(graph: Any) -> set:
    """Names of the tensors a Relu, or a Clip with a lower bound >= 0, writes."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer}
    out = set()
    for n in graph.graph.node:
        if n.op_type == "Relu":
            out.add(n.output[0])
        elif n.op_type == "Clip":
            low = inits.get(n.input[1]) if len(n.input) > 1 and n.input[1] else None
            if low is None:  # opset < 11 keeps the bound in an attribute
                low = next((a.f for a in n.attribute if a.name == "min"), None)
            if low is not None and float(np.asarray(low)) >= 0:
                out.add(n.output[0])
    return out


def translate_nodes(reference: Optional[Union[str, Path]], graph: Any, names: Sequence[str],
                    work: Path) -> List[str]:
    """``names`` (quantizable nodes of ``reference``'s prepared graph) as nodes of ``graph``: by position
    among the Conv / Gemm / MatMul nodes when both graphs list the same op types, else by name."""
    from edge_reid.deploy.int8 import QUANTIZED_OP_TYPES

    def quantizable(g: Any) -> List[Any]:
        return [n for n in g.graph.node if n.op_type in QUANTIZED_OP_TYPES]

    mine = quantizable(graph)
    if reference is not None:
        theirs = quantizable(load_onnx(prepare_for_quantization(reference, work / "reference_prepared.onnx")))
        if [n.op_type for n in theirs] == [n.op_type for n in mine]:
            position = {n.name: i for i, n in enumerate(theirs)}
            return [mine[position[name]].name for name in names if name in position]
        log.info("QAT: the folded graph's layers differ from the reference's; float nodes matched by name.")
    known = {n.name for n in mine}
    return [name for name in names if name in known]


def finetune(qat: QatModel, teacher: Any, images: np.ndarray, settings: QatSettings,
             say: Callable[[str], None] = print) -> List[float]:
    """Distil ``teacher``'s embeddings into the fake-quantized model (weights at ``lr``, the
    activation log-scales at ``scale_lr``); the mean loss of each epoch."""
    import torch

    student = qat.model.eval()  # eval mode: frozen statistics, no dropout; gradients still flow
    groups = qat.weight_groups(settings.lr)
    if qat.scale_parameters():
        groups.append({"params": qat.scale_parameters(), "lr": settings.scale_lr})
    opt = torch.optim.Adam(groups)
    rng = np.random.default_rng(0)
    losses = []
    for epoch in range(settings.epochs):
        order, total, steps = rng.permutation(len(images)), 0.0, 0
        for i in range(0, len(order), settings.batch_size):
            x = torch.from_numpy(images[order[i:i + settings.batch_size]])
            flip = torch.from_numpy(rng.random(len(x)) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            ids = {k: torch.from_numpy(v) for k, v in example_ids(qat.meta, len(x)).items()}
            with torch.no_grad():
                target = teacher(x, **ids)
            loss = (1.0 - torch.nn.functional.cosine_similarity(student(x, **ids), target, dim=1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            qat.floor_scales()
            total, steps = total + float(loss.detach()), steps + 1
        losses.append(total / max(steps, 1))
        say(f"QAT epoch {epoch + 1}/{settings.epochs}: cosine distance to FP32 {losses[-1]:.5f}.")
    return losses


def run_qat(model: Any, meta: ModelMeta, plan: QatPlan, calibration: np.ndarray, out_dir: Union[str, Path],
            float_nodes: Sequence[str] = (), reference: Optional[Union[str, Path]] = None,
            say: Callable[[str], None] = print, eval_set: Any = None, min_cosine: float = 0.99,
            threads: int = 0) -> Dict[str, Path]:
    """QAT of ``model``, then ``model_int8_qat_{trt,cpu}.onnx``. ``start: ptq``: from the post-training
    point (``float_nodes`` of ``reference``'s graph kept float, calibrated scales); ``start: all``: every
    layer fake-quantized, the float set chosen afterwards on the fine-tuned graph (against ``reference``,
    the FP32 graph; ``int8_qat_sensitivity.csv``)."""
    settings = plan.settings
    if settings.start not in ("ptq", "all"):
        raise InvalidInputError(f"Unknown QAT start {settings.start!r}; choose ptq or all.")
    say(f"QAT: {settings.epochs} epoch(s) at lr {settings.lr:g} (scales {settings.scale_lr:g}) on "
        f"{len(plan.images)} training crops of '{plan.dataset}', from {settings.start}.")
    with tempfile.TemporaryDirectory(prefix="edge-reid-qat.") as tmp:
        start = float_nodes if settings.start == "ptq" else ()
        qat = QatModel(model, meta, calibration, tmp, start, reference)
        say(f"QAT: {len(qat.node_to_module)} layers fake-quantized, {qat.folded} BatchNorm folded, "
            f"{len(qat.float_nodes)} left in float.")
        finetune(qat, copy.deepcopy(model).eval(), plan.images, settings, say)
        outputs = {f: Path(out_dir) / f"model_int8_qat_{f}.onnx" for f in ("trt", "cpu")}
        extra = {"qat": "1", "qat_epochs": str(settings.epochs), "qat_lr": f"{settings.lr:g}",
                 "qat_scale_lr": f"{settings.scale_lr:g}", "qat_start": settings.start}
        if settings.start == "all":  # the graphs the float-set search measured, written as they were measured
            from edge_reid.deploy.qat_search import qat_float_nodes

            return qat_float_nodes(qat, reference, eval_set, min_cosine, threads, out_dir, say, outputs, extra).artifacts
        return qat.export(outputs, extra)
