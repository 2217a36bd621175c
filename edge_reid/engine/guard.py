"""The training loop's guard against NaN, infinite and diverging steps.

The rule (documented in the README): a step is *bad* when its loss is NaN or infinite, when its
gradients are, or when its loss exceeds ``train.divergence_factor`` times the run's first finite
step loss (floored at 1; 0 disables that test). A bad step is skipped (no update, BatchNorm
statistics restored); ``train.max_nonfinite`` bad steps in a row stop training with
:class:`NonFiniteLossError` (exit status 2). An update that leaves any weight NaN or infinite
stops training at once, and no checkpoint is ever written from non-finite weights, so the last
checkpoint on disk always holds the last finite ones.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, List, Optional

import torch

from edge_reid.errors import EdgeReidError


class NonFiniteLossError(EdgeReidError):
    """Training produced NaN / infinite / diverging steps, or non-finite weights."""


def all_finite(tensors: Iterable[Optional[torch.Tensor]]) -> bool:
    """True when every floating-point tensor given (``None`` ignored) holds only finite values."""
    flags = [torch.isfinite(t.detach()).all() for t in tensors if t is not None and t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def loss_problem(loss: float, baseline: float, factor: float) -> Optional[str]:
    """Why a step's loss value is bad ("NaN or infinite" / "diverged ..."), or None when it is fine."""
    if not math.isfinite(loss):
        return "NaN or infinite"
    if factor > 0 and baseline > 0 and loss > factor * max(baseline, 1.0):
        return f"diverged ({loss:.3g} > {factor:g} x the first step's {baseline:.3g})"
    return None


def nonfinite_weights(module: torch.nn.Module) -> list:
    """Names of the parameters and floating-point buffers of ``module`` that hold NaN or infinity."""
    named = list(module.named_parameters()) + [(n, b) for n, b in module.named_buffers() if b.is_floating_point()]
    if all_finite(t for _, t in named):
        return []
    return [name for name, t in named if t.is_floating_point() and not bool(torch.isfinite(t.detach()).all())]


def skip_bad_step(trainer: Any, buffers: List[torch.Tensor], saved: List[torch.Tensor], problem: str) -> None:
    """Undo a bad step of ``trainer`` (BatchNorm statistics, gradients), count it, stop after too many in a row."""
    with torch.no_grad():
        for buf, old in zip(buffers, saved):
            buf.copy_(old)
    trainer.optimizer.zero_grad(set_to_none=True)
    state = trainer.state
    state.nonfinite_streak += 1
    state.nonfinite_total += 1
    where = f"epoch {state.epoch + 1}, batch {state.batch + 1}"
    if state.nonfinite_streak >= max(1, trainer.max_nonfinite):
        raise NonFiniteLossError(
            f"Training stopped: the loss was {problem} in {state.nonfinite_streak} steps in a row ({where}, "
            f"limit train.max_nonfinite={trainer.max_nonfinite}); lower optim.lr, set train.grad_clip or check the data."
        )
    trainer.print(f"warning: the loss was {problem} at {where}; step skipped ({state.nonfinite_streak} in a row).")


def refuse_nonfinite_checkpoint(module: torch.nn.Module, what: str) -> None:
    """Raise instead of writing ``what`` (a checkpoint) from weights that hold NaN or infinity."""
    broken = nonfinite_weights(module)
    if broken:
        raise NonFiniteLossError(f"Refusing to write {what}: {len(broken)} weight tensor(s) are NaN or infinite "
                                 f"(first: {broken[0]}); the previous checkpoint is kept.")
