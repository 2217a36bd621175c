"""Quantization-aware training (QAT): fine-tune a checkpoint under the exported Q/DQ arithmetic.

Library choice: PyTorch's own fake-quantize operators (see :mod:`edge_reid.deploy.qat_layers`).
NVIDIA's Model Optimizer (``nvidia-modelopt`` 0.47) was tried: importing its torch quantization
pulls omegaconf, pulp, pydantic, huggingface_hub (and its HTTP stack), safetensors and
nvidia-ml-py, and its export writes TensorRT-style graphs only, while edge-reid also needs the
ONNX Runtime CPU flavour from the same quantizer as post-training INT8. So the fake quantization
is torch's, placed and scaled as ONNX Runtime's quantizer writes the graph:

* BatchNorm layers that follow a convolution are folded into it first (the exported graph has no
  BatchNorm either); the model stays in eval mode (frozen statistics, no dropout);
* each Conv / Gemm / MatMul of the exported graph is matched to its PyTorch module by its weights;
  its weights are fake-quantized per output channel (recomputed every step, as at export) and its
  input per tensor with the post-training graph's scale (calibrated on the calibration set), fixed;
* the loss is the cosine distance to the FP32 model's embedding (distillation: no labels needed,
  and it is what the INT8 gate checks) on crops of the checkpoint's training split;
* export: the fine-tuned float model goes through the same quantizer; the TensorRT flavour keeps
  the trained activation scales (``TensorQuantOverrides``) and Q/DQ on quantized layers' inputs
  only (``quantize_inputs_only``), exactly the fake-quantized arithmetic; the CPU flavour (U8
  activations, for ONNX Runtime's fused kernels) is calibrated on the fine-tuned weights.

Layers with no module (attention products between two activations) stay in float in both.
"""

from __future__ import annotations

import copy
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from edge_reid.deploy.int8 import Int8Quantizer, prepare_for_quantization, write_qdq
from edge_reid.deploy.onnx_export import OnnxExporter, load_onnx, save_onnx
from edge_reid.deploy.qat_layers import (activation_scales, fake_quant_layer_class, fold_batchnorm, match_modules,
                                         quantize_inputs_only, set_module)
from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta

log = logging.getLogger(__name__)


@dataclass
class QatSettings:
    """The ``qat`` section of a training config."""

    epochs: int = 2
    lr: float = 1e-5
    images: int = 512
    batch_size: int = 32


class QatModel:
    """A folded copy of a model with fake-quantized layers, and how they map onto the ONNX graph."""

    def __init__(self, model: Any, meta: ModelMeta, calibration: np.ndarray, work_dir: Union[str, Path]) -> None:
        import torch

        if calibration is None or len(calibration) == 0:
            raise InvalidInputError("The calibration set is empty; give a folder or split with images.")
        self.meta, self.calibration, self.work = meta, calibration, Path(work_dir)
        self.model = copy.deepcopy(model).eval()
        self.folded = fold_batchnorm(self.model, torch.from_numpy(calibration[:2]))
        for p in self.model.parameters():
            p.requires_grad_(True)
        fp32 = OnnxExporter().export(self.model, meta, self.work / "folded_fp32.onnx").path
        self.prepared = prepare_for_quantization(fp32, self.work / "folded_prepared.onnx")
        graph = load_onnx(self.prepared)
        self.node_to_module, self.float_nodes = match_modules(self.model, graph)
        ptq = write_qdq(self.prepared, self.work / "ptq_trt.onnx", calibration, "trt", self.float_nodes, self.work)
        self.scales = activation_scales(load_onnx(ptq))
        wrapper = fake_quant_layer_class()
        nodes = {n.name: n for n in graph.graph.node}
        for node_name, module_name in self.node_to_module.items():
            node = nodes[node_name]
            layer = self.model.get_submodule(module_name)
            set_module(self.model, module_name, wrapper(layer, self.scales.get(node.input[0])))
        self.io = {n: (nodes[n].input[0], nodes[n].output[0]) for n in self.node_to_module}

    def float_model(self) -> Any:
        """The fine-tuned float model (fake quantization removed, BatchNorm folded)."""
        plain = copy.deepcopy(self.model)
        for name in self.node_to_module.values():
            set_module(plain, name, plain.get_submodule(name).layer)
        return plain.eval()

    def overrides(self) -> Dict[str, list]:
        """TensorQuantOverrides fixing every activation scale to the trained model's."""
        return {t: [{"scale": np.array(s, dtype=np.float32), "zero_point": np.array(0, dtype=np.int8)}] for t, s in self.scales.items()}

    def export(self, outputs: Dict[str, Union[str, Path]], extra: Optional[Dict[str, str]] = None) -> Dict[str, Path]:
        """Write the requested flavours (``trt``: the trained scales; ``cpu``: calibrated) of the fine-tuned model."""
        fp32 = OnnxExporter().export(self.float_model(), self.meta, self.work / "qat_fp32.onnx").path
        matched, _ = match_modules(self.float_model(), load_onnx(prepare_for_quantization(
            fp32, self.work / "qat_prepared.onnx")))
        if matched.keys() != self.node_to_module.keys():
            raise InvalidInputError("The fine-tuned model's ONNX graph no longer matches its layers; QAT export stopped.")
        quantizer = Int8Quantizer(keep_float=())
        meta = {"qat": "1", **(extra or {})}
        written: Dict[str, Path] = {}
        for flavour, out in outputs.items():
            written.update(quantizer.quantize(fp32, self.calibration, {flavour: out}, float_nodes=self.float_nodes,
                                              overrides=self.overrides() if flavour == "trt" else None,
                                              extra_metadata=meta))
            if flavour == "trt":
                save_onnx(quantize_inputs_only(load_onnx(written[flavour])), written[flavour])
        return written


def training_crops(dataset: Optional[str], root: Optional[str], input_size: Tuple[int, int], limit: int,
                   source: str) -> np.ndarray:
    """Up to ``limit`` pre-processed crops of ``dataset``'s training split, or one clear error."""
    from edge_reid.data import build_dataset
    from edge_reid.deploy.int8 import calibration_from_paths

    if not dataset:
        raise InvalidInputError(f"QAT needs the training data of {source}, which names no dataset.")
    try:
        ds = build_dataset(dataset, root=root, verbose=False)
        paths = [r.path for r in ds.train]
    except Exception as exc:  # a missing folder, an unknown name: the data is not available here
        raise InvalidInputError(f"QAT needs the training data of {source} (dataset '{dataset}'), which is not "
                                f"available here ({str(exc).rstrip('.')}).") from None
    if not paths:
        raise InvalidInputError(f"QAT needs the training data of {source}, but dataset '{dataset}' has no training images.")
    return calibration_from_paths(paths, input_size, limit)


def finetune(qat: QatModel, teacher: Any, images: np.ndarray, settings: QatSettings,
             say: Callable[[str], None] = print) -> List[float]:
    """Distil ``teacher``'s embeddings into the fake-quantized model; the mean loss of each epoch."""
    import torch

    student = qat.model.eval()  # eval mode: frozen statistics, no dropout; gradients still flow
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=settings.lr)
    rng = np.random.default_rng(0)
    losses = []
    for epoch in range(settings.epochs):
        order, total, steps = rng.permutation(len(images)), 0.0, 0
        for i in range(0, len(order), settings.batch_size):
            x = torch.from_numpy(images[order[i:i + settings.batch_size]])
            flip = torch.from_numpy(rng.random(len(x)) < 0.5)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            with torch.no_grad():
                target = teacher(x)
            loss = (1.0 - torch.nn.functional.cosine_similarity(student(x), target, dim=1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + float(loss.detach()), steps + 1
        losses.append(total / max(steps, 1))
        say(f"QAT epoch {epoch + 1}/{settings.epochs}: cosine distance to FP32 {losses[-1]:.5f}.")
    return losses


def settings_from_config(config: Optional[Dict[str, Any]]) -> QatSettings:
    """The ``qat`` section of a (resolved) training config, defaults for what it leaves out."""
    section = dict((config or {}).get("qat") or {})
    return QatSettings(**{k: type(getattr(QatSettings, k))(v) for k, v in section.items() if hasattr(QatSettings, k)})


def run_qat(model: Any, meta: ModelMeta, checkpoint: Optional[Path], calibration: np.ndarray,
            out_dir: Union[str, Path], config_path: Optional[str] = None,
            say: Callable[[str], None] = print) -> Dict[str, Path]:
    """QAT of ``model`` (from ``checkpoint``): fine-tune, then write ``model_int8_qat_{trt,cpu}.onnx``."""
    if calibration is None or len(calibration) == 0:
        raise InvalidInputError("The calibration set is empty; QAT needs calibration crops for its activation scales.")
    config: Dict[str, Any] = {}
    if checkpoint is not None:
        from edge_reid.models.checkpoint import read_checkpoint

        config = dict(read_checkpoint(checkpoint).get("config") or {})
    if config_path:
        from edge_reid.engine.config import load_config

        config = load_config(config_path)
    settings = settings_from_config(config)
    data = config.get("data") or {}
    source = f"checkpoint {checkpoint}" if checkpoint else f"the untrained '{meta.model}'"
    dataset = data.get("dataset") or (meta.dataset if checkpoint and meta.dataset not in ("unknown", "") else None)
    images = training_crops(dataset, data.get("root"), meta.input_size, settings.images, source)
    say(f"QAT: {settings.epochs} epoch(s) at lr {settings.lr:g} on {len(images)} training crops "
        f"of '{dataset}'.")
    with tempfile.TemporaryDirectory(prefix="edge-reid-qat.") as tmp:
        qat = QatModel(model, meta, calibration, tmp)
        say(f"QAT: {len(qat.node_to_module)} layers fake-quantized, {qat.folded} BatchNorm folded, "
            f"{len(qat.float_nodes)} left in float.")
        finetune(qat, copy.deepcopy(model).eval(), images, settings, say)
        out_dir = Path(out_dir)
        return qat.export({f: out_dir / f"model_int8_qat_{f}.onnx" for f in ("trt", "cpu")},
                          {"qat_epochs": str(settings.epochs), "qat_lr": f"{settings.lr:g}"})
