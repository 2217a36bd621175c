"""Lower layers never import higher ones (DESIGN.md's layout table): checked on the source, statically.

Every import counts: at module level or lazily inside a function, absolute or relative. Every
layer of ``edge_reid`` (sub-package or top-level module) must be listed, so a new one cannot slip
past unchecked; ``kernels/`` sits below the package and may use only its errors and utils.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "edge_reid"

LAYERS = {"bench", "cli", "data", "deploy", "engine", "errors", "evaluation", "losses", "metadata", "models",
          "registry", "runtime", "stream", "utils", "version"}


def _all_but(*allowed: str) -> Set[str]:
    return LAYERS - set(allowed)


#: For each layer, the edge_reid layers it must never import (at module level or lazily).
FORBIDDEN: Dict[str, Set[str]] = {
    "data": {"bench", "cli", "deploy", "engine", "evaluation", "losses", "models", "runtime", "stream"},
    "losses": {"bench", "cli", "data", "deploy", "engine", "evaluation", "models", "runtime", "stream"},
    "models": {"bench", "cli", "deploy", "engine", "evaluation", "runtime", "stream"},
    "evaluation": {"bench", "cli", "deploy", "engine", "losses", "runtime", "stream"},
    "engine": {"bench", "cli", "deploy", "runtime", "stream"},
    # deploy -> engine is allowed, lazily: the build trains its default checkpoint when none is given,
    # and QAT reads the training config of its checkpoint
    "deploy": {"bench", "cli", "stream"},
    # runtime -> models only in the torch backend (lazily); the Jetson path has no PyTorch
    "runtime": {"bench", "cli", "data", "engine", "evaluation", "losses", "stream"},
    "stream": {"bench", "cli", "deploy", "engine", "losses", "models"},
    # bench -> cli only for the benchmarks/ scripts' guard (run_guarded), lazily
    "bench": {"engine", "stream"},
    "utils": _all_but("errors", "utils"),
    "errors": _all_but("errors"),
    "version": _all_but("version"),
    "registry": _all_but("errors", "registry"),
    "metadata": _all_but("errors", "metadata", "version"),
}

#: The layers that may import any other: the command line dispatches to all of them.
TOP = {"cli"}

#: What ``kernels/`` (below models) may use of edge_reid.
KERNELS_MAY_IMPORT = {"errors", "utils"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(source: str, package: str) -> List[str]:
    """Every module ``source`` imports, relative imports resolved against ``package`` (its own package)."""
    names: List[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            names += [module] + [f"{module}.{a.name}" for a in node.names]
    return names


def _imported_layers(path: Path) -> Set[str]:
    own = _module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    layers: Set[str] = set()
    for name in _imported_modules(path.read_text(encoding="utf-8"), package):
        parts = name.split(".")
        if parts[0] == "edge_reid" and len(parts) > 1:
            layers.add(parts[1])
    return layers


def _files(layer: str) -> List[Path]:
    module = PACKAGE / f"{layer}.py"
    return [module] if module.is_file() else sorted((PACKAGE / layer).rglob("*.py"))


def _offenders(files: List[Path], layer: str, forbidden: Set[str]) -> List[str]:
    out = []
    for path in files:
        bad = (_imported_layers(path) - {layer}) & forbidden
        if bad:
            out.append(f"{path.relative_to(REPO)} imports edge_reid.{', edge_reid.'.join(sorted(bad))}")
    return out


def test_every_layer_is_checked() -> None:
    found = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    found |= {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    assert found == LAYERS, f"layers not in LAYERS: {sorted(found - LAYERS)}; gone: {sorted(LAYERS - found)}"
    assert set(FORBIDDEN) | TOP == LAYERS


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_no_higher_layer(layer: str) -> None:
    files = _files(layer)
    assert files, f"edge_reid/{layer} has no Python files"
    offenders = _offenders(files, layer, FORBIDDEN[layer])
    assert not offenders, "; ".join(offenders)


def test_kernels_use_only_the_package_base() -> None:
    files = sorted((REPO / "kernels").rglob("*.py"))
    assert files
    offenders = _offenders(files, "", LAYERS - KERNELS_MAY_IMPORT)
    assert not offenders, "; ".join(offenders)


def test_relative_imports_are_resolved() -> None:
    """A relative import cannot hide a forbidden one: it is resolved the way Python resolves it."""
    source = "from ..loader import read_image\nfrom ... import bench\nfrom .base import X\nimport numpy\n"
    names = _imported_modules(source, "edge_reid.data.datasets")
    assert names == ["edge_reid.data.loader", "edge_reid.data.loader.read_image", "edge_reid", "edge_reid.bench",
                     "edge_reid.data.datasets.base", "edge_reid.data.datasets.base.X", "numpy"]


def test_tests_import_their_helpers_as_siblings() -> None:
    """CI runs plain ``pytest`` (rootdir-relative imports): ``tests/`` is on sys.path, the repository
    root is not, so ``import tests.x`` only works under ``python -m pytest``. Helpers are imported
    as ``from scripts import ...``."""
    offenders = []
    for path in sorted((REPO / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            offenders += [f"{path.name}:{node.lineno} {n}" for n in names if n == "tests" or n.startswith("tests.")]
    assert not offenders, offenders
