"""The FBNetV2-style search space: stages of layers, each choosing one candidate block.

A candidate is an inverted-residual block (1x1 expand, k x k depthwise, 1x1 project) with an
expansion ratio and kernel size, or ``skip`` (identity; only where the layer keeps its shape).
Channel counts are fixed per row (the top of the paper's channel range): this space searches
block types, not channel widths. A DCS-Attention block follows every stage marked ``dcs``.

``SPACES["fbnetv2"]`` is the paper's FBNetV2 supernet (Table III, FBNetV2 column);
``SPACES["tiny"]`` is a CPU-sized space with the same structure, for tests and smoke runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import torch
from torch import nn

from edge_reid.errors import InvalidInputError

SKIP = "skip"


@dataclass(frozen=True)
class Row:
    """``n`` layers with ``channels`` outputs; the first has ``stride``, the others stride 1."""

    channels: int
    n: int
    stride: int
    expansions: Tuple[float, ...]
    kernels: Tuple[int, ...] = (3, 5)


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
        """Every searchable layer: ``stage``, ``cin``, ``cout``, ``stride`` and ``candidates``."""
        out: List[Dict[str, Any]] = []
        cin = self.stem_channels
        for s, stage in enumerate(self.stages):
            for row in stage.rows:
                for i in range(row.n):
                    stride = row.stride if i == 0 else 1
                    cands: List[Any] = [(float(e), int(k)) for e in row.expansions for k in row.kernels]
                    if stride == 1 and cin == row.channels:
                        cands.append(SKIP)
                    out.append({"stage": s, "cin": cin, "cout": row.channels, "stride": stride, "candidates": cands})
                    cin = row.channels
        return out


def _range(lo: float, hi: float, step: float) -> Tuple[float, ...]:
    n = int(round((hi - lo) / step)) + 1
    return tuple(round(lo + i * step, 4) for i in range(n))


SPACES: Dict[str, SearchSpace] = {
    "tiny": SearchSpace(
        "tiny", 8,
        (
            Stage((Row(8, 1, 1, (1.0,), (3,)),), dcs=False),
            Stage((Row(12, 2, 2, (1.0, 3.0)),)),
            Stage((Row(16, 2, 2, (1.0, 3.0)),)),
        ),
        64,
    ),
    "fbnetv2": SearchSpace(
        "fbnetv2", 16,
        (
            Stage((Row(16, 1, 1, (1.0,)),), dcs=False),
            Stage((Row(28, 1, 2, _range(0.75, 3.25, 0.5)), Row(28, 2, 1, _range(0.75, 3.25, 0.5)))),
            Stage((Row(40, 1, 2, _range(0.75, 3.25, 0.5)), Row(40, 2, 1, _range(0.75, 3.25, 0.5)))),
            Stage((Row(96, 1, 2, _range(0.75, 3.25, 0.5)), Row(96, 2, 1, _range(0.75, 3.25, 0.5)),
                   Row(128, 4, 1, _range(0.75, 4.5, 0.75)))),
            Stage((Row(216, 1, 2, _range(0.75, 4.5, 0.75)), Row(216, 3, 1, _range(0.75, 4.5, 0.75)))),
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
    """MobileNetV2 block: 1x1 expand (skipped at ratio 1), k x k depthwise, 1x1 linear project."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: float, kernel: int) -> None:
        super().__init__()
        hidden = max(1, int(round(cin * expansion)))
        layers: List[nn.Module] = []
        if hidden != cin:
            layers.append(conv_bn(cin, hidden, 1))
        layers += [conv_bn(hidden, hidden, kernel, stride, groups=hidden), conv_bn(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


def make_block(cin: int, cout: int, stride: int, choice: Any) -> nn.Module:
    """The module for one candidate (``skip`` -> identity)."""
    if choice == SKIP:
        if stride != 1 or cin != cout:
            raise InvalidInputError(f"A skip block needs stride 1 and equal channels, got {cin}->{cout} stride {stride}.")
        return nn.Identity()
    expansion, kernel = choice
    return InvertedResidual(cin, cout, stride, float(expansion), int(kernel))


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


