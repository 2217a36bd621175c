"""Lower layers never import higher ones (DESIGN.md's layout table): checked on the source, statically."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edge_reid"

#: For each layer, the edge_reid layers it must never import (at module level or lazily).
FORBIDDEN: Dict[str, Set[str]] = {
    "data": {"bench", "cli", "deploy", "engine", "runtime", "stream"},
    "losses": {"bench", "cli", "deploy", "engine", "runtime", "stream"},
    "models": {"bench", "cli", "deploy", "engine", "runtime", "stream"},
    "evaluation": {"bench", "cli", "deploy", "engine", "stream"},
    # deploy -> engine is allowed, lazily: the build trains its default checkpoint when none is given,
    # and QAT reads the training config of its checkpoint
    "deploy": {"bench", "cli", "stream"},
    "runtime": {"bench", "cli", "engine", "stream"},
    "stream": {"bench", "cli", "deploy", "engine"},
    "utils": {"bench", "cli", "data", "deploy", "engine", "evaluation", "losses", "models", "runtime", "stream"},
}


def _imported_layers(path: Path) -> Set[str]:
    layers: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "edge_reid" and len(parts) > 1:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_no_higher_layer(layer: str) -> None:
    offenders = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        bad = _imported_layers(path) & FORBIDDEN[layer]
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE)} imports edge_reid.{', edge_reid.'.join(sorted(bad))}")
    assert not offenders, "; ".join(offenders)
