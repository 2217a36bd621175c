"""Model complexity: parameters (total, per part, trainable) and multiply-adds.

Multiply-adds are counted with PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` (no
extra dependency) on one eval-mode forward pass, so they describe the deployed model. The same
pass counts the elements BatchNorm layers normalise, for the papers' conventions
(:data:`CONVENTIONS`): the DCS paper's "FLOPs" are 2 x multiply-adds, VisNet's are what the
``thop`` counter reports: multiply-adds of conv/linear layers plus, per BatchNorm layer, 2 per
element, doubled for an affine layer (thop's ``count_normalization``). With that rule VisNet
counts 4.6018 G at 256x128, the paper's 4.601 G; with 2 per element it would be 4.576 G.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edge_reid.errors import InvalidInputError
from edge_reid.models.base import example_extra_inputs


@dataclass
class ComplexityReport:
    """Parameter counts and multiply-adds of one model at one input size."""

    model: str
    input_size: Tuple[int, int]
    batch: int
    params: int
    trainable_params: int
    parts: Dict[str, int] = field(default_factory=dict)  # dotted module name -> params
    macs: int = 0  # multiply-adds of one forward pass of the whole batch
    bn_ops: int = 0  # thop's BatchNorm count of that pass: 2 per element, x2 for affine layers

    @property
    def gmacs(self) -> float:
        """Multiply-adds per image, in billions."""
        return self.macs / self.batch / 1e9

    def gflops(self, convention: str) -> float:
        """Billions of operations per image in a paper's ``convention`` (a key of :data:`CONVENTIONS`)."""
        if convention not in CONVENTIONS:
            raise InvalidInputError(f"Unknown FLOPs convention '{convention}'; known: {', '.join(CONVENTIONS)}.")
        return CONVENTIONS[convention][1](self) / self.batch / 1e9

    def table(self) -> str:
        """A plain-text table: one row per part, then totals and GMACs per image."""
        width = max([len(n) + 2 * n.count(".") for n in self.parts] + [len("GMACs/image")])
        lines = [f"{self.model} @ {self.input_size[0]}x{self.input_size[1]}", f"{'part':<{width}}  {'params':>12}  {'share':>7}"]
        for name, count in self.parts.items():
            indent = "  " * name.count(".")
            share = 100.0 * count / self.params if self.params else 0.0
            lines.append(f"{indent + name:<{width}}  {count:>12,}  {share:>6.2f}%")
        lines.append(f"{'total':<{width}}  {self.params:>12,}")
        lines.append(f"{'trainable':<{width}}  {self.trainable_params:>12,}")
        lines.append(f"{'GMACs/image':<{width}}  {self.gmacs:>12.3f}")
        return "\n".join(lines)


#: name -> (description, operations of a report's whole batch).
CONVENTIONS: Dict[str, Tuple[str, Callable[[ComplexityReport], float]]] = {
    "macs": ("multiply-adds of conv/linear/matmul", lambda r: float(r.macs)),
    "2x-macs": ("FLOPs = 2 x multiply-adds (the DCS-Attention paper)", lambda r: 2.0 * r.macs),
    "thop": ("multiply-adds + BatchNorm ops as thop counts them (the VisNet paper)",
             lambda r: float(r.macs) + float(r.bn_ops)),
}


def parameter_parts(model: nn.Module, depth: int = 2) -> Dict[str, int]:
    """Parameters of each submodule down to ``depth`` levels (dotted names, parents first).

    Only modules that own parameters are listed; a module whose parameters all sit in one
    child is not split further.
    """
    parts: Dict[str, int] = {}

    def visit(module: nn.Module, prefix: str, level: int) -> None:
        for name, child in module.named_children():
            count = _count(child)
            if count == 0:
                continue
            full = f"{prefix}{name}"
            parts[full] = count
            children = [c for c in child.children() if _count(c) > 0]
            if level < depth and len(children) > 1:
                visit(child, full + ".", level + 1)

    visit(model, "", 1)
    return parts


def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of ``model(example)`` as counted by torch's FlopCounterMode (FLOPs / 2).

    A model with extra inputs (``extra_inputs``: camera ids, modality) gets zeros for them.
    """
    return count_macs_and_bn(model, example)[0]


def count_macs_and_bn(model: nn.Module, example: torch.Tensor) -> Tuple[int, int]:
    """(multiply-adds, thop's BatchNorm operations) of one ``model(example)`` pass.

    BatchNorm: 2 operations per input element ((x - mean) / std), twice that when the layer is
    affine (the scale and shift), as thop counts them.
    """
    bn = [0]

    def hook(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        bn[0] += 2 * int(output.numel()) * (2 if getattr(module, "affine", False) else 1)

    handles: List[torch.utils.hooks.RemovableHandle] = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    extra = example_extra_inputs(model, example.shape[0], example.device)
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example, **extra)
    finally:
        for h in handles:
            h.remove()
    return int(counter.get_total_flops()) // 2, bn[0]


def complexity(model: nn.Module, input_size: Sequence[int] = (256, 128), batch: int = 1) -> ComplexityReport:
    """Count parameters and multiply-adds of ``model`` for RGB input ``batch x 3 x H x W``.

    Convention: one multiply-add = 2 FLOPs of ``torch.utils.flop_counter``, which counts the
    matrix work of convolutions, linear layers and matmuls; batch norm, activations, pooling,
    interpolation and element-wise sums are not counted. The pass runs in eval mode (training-
    only heads such as VisNet's semantic head are not counted); the model's mode is restored.
    Parameters include frozen ones (e.g. the BNNeck bias); ``trainable_params`` excludes them.
    """
    try:
        height, width = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise InvalidInputError(f"input_size must be (height, width), got {input_size!r}.") from None
    if height <= 0 or width <= 0 or int(batch) <= 0:
        raise InvalidInputError(f"input_size and batch must be positive, got {input_size!r} and {batch!r}.")
    params = _count(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    parts = parameter_parts(model)
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    example = torch.rand(int(batch), 3, height, width, device=device)
    was_training = model.training
    model.eval()
    try:
        macs, bn_ops = count_macs_and_bn(model, example)
    finally:
        model.train(was_training)
    name = getattr(model, "model_name", type(model).__name__)
    return ComplexityReport(name, (height, width), int(batch), params, trainable, parts, macs, bn_ops)


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
