"""The FBNetV2-style search space: stages of layers, each choosing a block and a width.

Two kinds of choice, as in FBNetV2 and the paper's Table III:

* the block of every layer: an inverted-residual block (1x1 expand, k x k depthwise, 1x1
  project) with an expansion ratio and kernel size, or ``skip`` (identity; only where the layer
  has a residual connection);
* the output width (channel count) from the row's channel range (start, stop, step). Layers of
  consecutive rows with the same range in one stage form a *channel group* and share one width
  choice (so their residual connections stay valid); a layer has a residual connection when it
  has stride 1 and follows a layer of its own group.

A DCS-Attention block follows every stage marked ``dcs``. ``SPACES["fbnetv2"]`` is the paper's
FBNetV2 supernet (Table III, FBNetV2 column); ``SPACES["tiny"]`` is a CPU-sized space with the
same structure, for tests and smoke runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from edge_reid.errors import InvalidInputError

SKIP = "skip"


@dataclass(frozen=True)
class Row:
    """``n`` layers whose output width is one of ``widths``; the first has ``stride``, the others 1."""

    widths: Tuple[int, ...]
    n: int
    stride: int
    expansions: Tuple[float, ...]
    kernels: Tuple[int, ...] = (3, 5)

    @property
    def channels(self) -> int:
        """The widest choice (the width the supernet's weights have)."""
        return max(self.widths)


@dataclass(frozen=True)
class Stage:
    rows: Tuple[Row, ...]
    dcs: bool = True


@dataclass(frozen=True)
class SearchSpace:
    name: str
    stem_channels: int
    stages: Tuple[Stage, ...]
    final_channels: int

    def layers(self) -> List[Dict[str, Any]]:
        """Every searchable layer: ``stage``, ``group`` (its channel group), ``cin`` / ``cout`` (the
        widest), ``widths`` (the output width choices), ``stride``, ``residual`` and ``candidates``."""
        out: List[Dict[str, Any]] = []
        cin = self.stem_channels
        group, last = -1, None
        for s, stage in enumerate(self.stages):
            for row in stage.rows:
                if (s, tuple(row.widths)) != last:
                    group, last = group + 1, (s, tuple(row.widths))
                for i in range(row.n):
                    stride = row.stride if i == 0 else 1
                    residual = stride == 1 and bool(out) and out[-1]["group"] == group
                    cands: List[Any] = [(float(e), int(k)) for e in row.expansions for k in row.kernels]
                    if residual:
                        cands.append(SKIP)
                    out.append({"stage": s, "group": group, "cin": cin, "cout": row.channels,
                                "widths": [int(w) for w in row.widths], "stride": stride, "residual": residual,
                                "candidates": cands})
                    cin = row.channels
        return out

    def groups(self) -> List[List[int]]:
        """The width choices of every channel group, in order."""
        widths: Dict[int, List[int]] = {}
        for layer in self.layers():
            widths.setdefault(layer["group"], layer["widths"])
        return [widths[g] for g in sorted(widths)]


def _range(lo: float, hi: float, step: float) -> Tuple[float, ...]:
    n = int(round((hi - lo) / step)) + 1
    return tuple(round(lo + i * step, 4) for i in range(n))


def _widths(lo: int, hi: int, step: int) -> Tuple[int, ...]:
    """Table III's channel range (start, stop, step), both ends included."""
    return tuple(range(lo, hi + 1, step))


E1 = _range(0.75, 3.25, 0.5)
E2 = _range(0.75, 4.5, 0.75)


SPACES: Dict[str, SearchSpace] = {
    "tiny": SearchSpace(
        "tiny", 8,
        (
            Stage((Row((8,), 1, 1, (1.0,), (3,)),), dcs=False),
            Stage((Row((8, 12), 1, 2, (1.0, 3.0)), Row((8, 12), 1, 1, (1.0, 3.0)))),
            Stage((Row((12, 16), 1, 2, (1.0, 3.0)), Row((12, 16), 1, 1, (1.0, 3.0)))),
        ),
        64,
    ),
    "fbnetv2": SearchSpace(  # the paper's Table III, FBNetV2 column
        "fbnetv2", 16,
        (
            Stage((Row(_widths(12, 16, 4), 1, 1, (1.0,)),), dcs=False),
            Stage((Row(_widths(16, 28, 4), 1, 2, E1), Row(_widths(16, 28, 4), 2, 1, E1))),
            Stage((Row(_widths(16, 40, 8), 1, 2, E1), Row(_widths(16, 40, 8), 2, 1, E1))),
            Stage((Row(_widths(48, 96, 8), 1, 2, E1), Row(_widths(48, 96, 8), 2, 1, E1),
                   Row(_widths(72, 128, 8), 4, 1, E2))),
            Stage((Row(_widths(112, 216, 8), 1, 2, E2), Row(_widths(112, 216, 8), 3, 1, E2))),
        ),
        1984,
    ),
}


def get_space(name: str) -> SearchSpace:
    """The named search space; an unknown name is a clear error."""
    if name not in SPACES:
        raise InvalidInputError(f"Unknown DNAS search space '{name}'; known spaces: {', '.join(SPACES)}.")
    return SPACES[name]


def candidate_key(choice: Any) -> str:
    """A stable text key for a candidate (latency tables, logs): ``e3.0_k5`` or ``skip``."""
    return SKIP if choice == SKIP else f"e{float(choice[0])}_k{int(choice[1])}"


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv (no bias) + BN (+ ReLU6)."""
    layers: List[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand (skipped at ratio 1), k x k depthwise, 1x1 linear project.

    ``residual`` (default: stride 1 and cin == cout) adds the input to the output.
    """

    def __init__(self, cin: int, cout: int, stride: int, expansion: float, kernel: int,
                 residual: Optional[bool] = None) -> None:
        super().__init__()
        hidden = max(1, int(round(cin * expansion)))
        layers: List[nn.Module] = []
        if hidden != cin:
            layers.append(conv_bn(cin, hidden, 1))
        layers += [conv_bn(hidden, hidden, kernel, stride, groups=hidden), conv_bn(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        default = stride == 1 and cin == cout
        if residual and not default:
            raise InvalidInputError(f"A residual block needs stride 1 and equal channels, got {cin}->{cout} stride {stride}.")
        self.residual = default if residual is None else bool(residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def make_block(cin: int, cout: int, stride: int, choice: Any, residual: Optional[bool] = None) -> nn.Module:
    """The module for one candidate (``skip`` -> identity)."""
    if choice == SKIP:
        if stride != 1 or cin != cout:
            raise InvalidInputError(f"A skip block needs stride 1 and equal channels, got {cin}->{cout} stride {stride}.")
        return nn.Identity()
    expansion, kernel = choice
    return InvertedResidual(cin, cout, stride, float(expansion), int(kernel), residual)


def describe(space: SearchSpace) -> Dict[str, Any]:
    """A JSON-able description of the space (stored with search results)."""
    return {
        "name": space.name,
        "stem_channels": space.stem_channels,
        "final_channels": space.final_channels,
        "layers": [dict(l, candidates=[candidate_key(c) for c in l["candidates"]]) for l in space.layers()],
    }


def count_choices(space: SearchSpace) -> Sequence[int]:
    """Number of candidates per layer."""
    return [len(l["candidates"]) for l in space.layers()]


