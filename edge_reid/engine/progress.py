"""Where a training run stands: :class:`TrainState` and the sums of the epoch now running.

:class:`TrainState` (epoch, batch, step, learning rate, bad-step counts, best mAP, last metrics)
is saved in every checkpoint. :class:`EpochStats` (mean loss terms, loss weights, images per
second) feeds the progress bar's postfix and the epoch's log row, and travels in a mid-epoch
checkpoint (``epoch_accum``: a dict of plain numbers) so a resumed epoch reports the whole
epoch, not only its remainder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import torch


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches consumed in the epoch now running
    global_step: int = 0
    lr: float = 0.0
    nonfinite_streak: int = 0
    nonfinite_total: int = 0
    loss_baseline: float = 0.0  # the first finite step loss (the divergence test's reference)
    best_map: float = -1.0
    best_epoch: int = -1
    metrics: Dict[str, float] = field(default_factory=dict)
    initial_metrics: Dict[str, float] = field(default_factory=dict)
    evaluated_now: bool = False


def _empty() -> Dict[str, Any]:
    return {"terms": {}, "weights": {}, "steps": 0, "images": 0, "seconds": 0.0}


class EpochStats:
    """Sums over the steps of one epoch (``sums``: terms, weights, steps, images, seconds)."""

    def __init__(self, saved: Optional[Mapping[str, Any]] = None) -> None:
        self.sums: Dict[str, Any] = dict(saved or _empty())

    def add_time(self, seconds: float, images: int) -> None:
        """Count one step's training time and images (all ranks)."""
        self.sums["seconds"] += seconds
        self.sums["images"] += images

    def add_result(self, result: Any) -> None:
        """Add a step's ``LossResult``: total as ``loss``, each term, the latest weights."""
        acc = self.sums
        acc["steps"] += 1
        terms = acc["terms"]
        terms["loss"] = terms.get("loss", 0.0) + float(result.total.detach())
        for name, value in dict(result.terms).items():
            terms[name] = terms.get(name, 0.0) + float(value.detach() if torch.is_tensor(value) else value)
        acc["weights"] = {k: float(v) for k, v in dict(getattr(result, "weights", {}) or {}).items()}

    def postfix(self, lr: float) -> str:
        """The progress bar's text: mean terms, weights, learning rate, images/s."""
        acc = self.sums
        steps = max(1, acc["steps"])
        parts = [f"{k} {v / steps:.3f}" for k, v in acc["terms"].items()]
        parts += [f"w.{k} {v:.2f}" for k, v in acc["weights"].items()]
        parts.append(f"lr {lr:.2e}")
        if acc["seconds"] > 0:
            parts.append(f"{acc['images'] / acc['seconds']:.1f} img/s")
        return " ".join(parts)

    def summary(self, epoch: int, lr: float, skipped_steps: int) -> Dict[str, Any]:
        """The epoch's log row: mean loss and terms, weights, throughput, time, skipped steps."""
        acc = self.sums
        steps = max(1, acc["steps"])
        row: Dict[str, Any] = {"epoch": epoch, "lr": lr}
        for name, value in acc["terms"].items():
            row[name if name == "loss" else f"loss.{name}"] = value / steps
        for name, value in acc["weights"].items():
            row[f"weight.{name}"] = value
        row["images_per_s"] = acc["images"] / acc["seconds"] if acc["seconds"] > 0 else 0.0
        row["time_s"] = acc["seconds"]
        row["skipped_steps"] = skipped_steps
        return row


__all__ = ["EpochStats", "TrainState"]
