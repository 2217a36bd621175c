"""Intercept the launches of a kernel module's autotuned Triton kernels.

The wrappers (``mca_forward``, ``wsum_backward``, ...) launch module-level ``triton.autotune``
kernels as ``kernel[grid](*args, **constexprs)``. Two ways to step in, both restoring the kernels
on exit:

* :func:`recording`: record each launch (kernel, arguments) instead of running it; the
  ahead-of-time compile check (``kernels.compile_check``) types its compiles from these.
* :func:`fixed_config`: run each launch with one given configuration instead of autotuning; the
  tests use it to check every GPU configuration's arithmetic under the interpreter, and on a GPU
  it times one configuration alone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Sequence, Tuple


@dataclass
class Launch:
    """One kernel launch as a wrapper made it: the autotuned kernel and its call arguments."""

    name: str
    tuner: Any
    args: Tuple[Any, ...]
    constexprs: Dict[str, Any]
    shapes: str = "spec"


def autotuned_kernels(module: Any) -> Dict[str, Any]:
    """The module's autotuned Triton kernels by attribute name."""
    from triton.runtime.autotuner import Autotuner

    return {k: v for k, v in vars(module).items() if isinstance(v, Autotuner)}


class _Proxy:
    """Stands in for an autotuned kernel: ``proxy[grid](*args, **kw)`` calls ``on_launch``.

    Other attributes (``.configs``, ``.fn``) are the real kernel's, since wrappers may read them.
    """

    def __init__(self, name: str, tuner: Any, on_launch: Callable[..., None]):
        self._name, self._tuner, self._on_launch = name, tuner, on_launch

    def __getattr__(self, item: str) -> Any:
        return getattr(self._tuner, item)

    def __getitem__(self, grid: Any) -> Callable[..., None]:
        return lambda *args, **constexprs: self._on_launch(self._name, self._tuner, grid, args, constexprs)


@contextlib.contextmanager
def _patched(modules: Sequence[Any], on_launch: Callable[..., None]) -> Iterator[None]:
    for module in modules:  # check them all before patching any
        if any(isinstance(v, _Proxy) for v in vars(module).values()):
            raise RuntimeError(f"{module.__name__}'s kernels are already intercepted; do not nest these contexts")
    saved = []
    for module in modules:
        for attr, tuner in autotuned_kernels(module).items():
            saved.append((module, attr, tuner))
            setattr(module, attr, _Proxy(f"{module.__name__.rsplit('.', 1)[-1]}.{attr}", tuner, on_launch))
    try:
        yield
    finally:
        for module, attr, tuner in saved:
            setattr(module, attr, tuner)


@contextlib.contextmanager
def recording(modules: Sequence[Any]) -> Iterator[List[Launch]]:
    """Within the block, launches of the modules' autotuned kernels are recorded, not run."""
    sink: List[Launch] = []

    def record(name: str, tuner: Any, grid: Any, args: tuple, constexprs: dict) -> None:
        if callable(grid):  # wrappers may keep state the grid function sets (e.g. block counts)
            grid(dict(tuner.configs[0].all_kwargs()))
        sink.append(Launch(name, tuner, args, constexprs))

    with _patched(modules, record):
        yield sink


@contextlib.contextmanager
def fixed_config(modules: Sequence[Any], config: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, the modules' autotuned kernels run with ``config`` (block sizes, and
    ``num_warps`` / ``num_stages`` when given) instead of autotuning."""
    meta = {k: v for k, v in config.items() if k not in ("num_warps", "num_stages")}
    options = {k: v for k, v in config.items() if k in ("num_warps", "num_stages")}

    def run(name: str, tuner: Any, grid: Any, args: tuple, constexprs: dict) -> None:
        launch_grid = grid({**constexprs, **meta}) if callable(grid) else grid
        tuner.fn[launch_grid](*args, **constexprs, **meta, **options)

    with _patched(modules, run):
        yield


__all__ = ["Launch", "autotuned_kernels", "fixed_config", "recording"]
