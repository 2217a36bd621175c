"""Dynamic Weight Averaging over batches (VisNet's multi-task balance).

Each task's per-batch loss is recorded. Until 2W batches exist every weight is 1; then
r_k = mean(last W) / mean(previous W) and lambda = K * softmax(r / T). A task whose loss falls
more slowly than the others gets more weight. Weights are plain floats: no gradient flows
through them. The state is plain lists and floats so that a checkpoint loaded with
``torch.load(weights_only=True)`` restores it bit-exactly.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence

from edge_reid.errors import EdgeReidError


class DynamicWeightAveraging:
    """Per-batch DWA; call :meth:`weights` for the current batch, then :meth:`update` with its losses."""

    def __init__(self, task_names: Sequence[str], window: int = 50, temperature: float = 2.0) -> None:
        names = [str(n) for n in task_names]
        if not names:
            raise EdgeReidError("DWA needs at least one task name in 'task_names'.")
        if len(set(names)) != len(names):
            raise EdgeReidError(f"DWA 'task_names' must be unique, got {names}.")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise EdgeReidError(f"DWA option 'window' must be a positive integer, got {window!r}.")
        try:
            temperature = float(temperature)
        except (TypeError, ValueError):
            raise EdgeReidError(f"DWA option 'temperature' must be a number, got {temperature!r}.") from None
        if not temperature > 0:
            raise EdgeReidError(f"DWA option 'temperature' must be > 0, got {temperature!r}.")
        self.task_names: List[str] = names
        self.window = window
        self.temperature = temperature
        self.history: Dict[str, List[float]] = {n: [] for n in names}
        self.num_updates = 0

    def ready(self) -> bool:
        """True once 2W batches of history exist (the weights then follow the formula)."""
        return len(self.history[self.task_names[0]]) >= 2 * self.window

    def weights(self) -> Dict[str, float]:
        """lambda_k for the next batch, from the history recorded so far."""
        k = len(self.task_names)
        if not self.ready():
            return {n: 1.0 for n in self.task_names}
        w = self.window
        ratios = []
        for n in self.task_names:
            h = self.history[n]
            last = math.fsum(h[-w:]) / w
            prev = math.fsum(h[-2 * w : -w]) / w
            ratios.append(last / max(prev, 1e-12))
        scaled = [r / self.temperature for r in ratios]
        top = max(scaled)
        exps = [math.exp(s - top) for s in scaled]
        total = math.fsum(exps)
        return {n: k * e / total for n, e in zip(self.task_names, exps)}

    def update(self, losses: Mapping[str, float]) -> None:
        """Record one batch's loss value per task (keeps only the last 2W values)."""
        missing = [n for n in self.task_names if n not in losses]
        if missing:
            raise EdgeReidError(f"DWA update is missing the loss of task '{missing[0]}'.")
        for n in self.task_names:
            value = float(losses[n])
            if not math.isfinite(value):
                raise EdgeReidError(f"DWA got a non-finite loss {value} for task '{n}'.")
            h = self.history[n]
            h.append(value)
            if len(h) > 2 * self.window:
                del h[0]
        self.num_updates += 1

    def state_dict(self) -> Dict[str, Any]:
        """Plain Python state (lists of floats), safe for ``torch.load(weights_only=True)``."""
        return {
            "task_names": list(self.task_names),
            "window": self.window,
            "temperature": self.temperature,
            "history": {n: list(h) for n, h in self.history.items()},
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; the task names and window must match this instance."""
        names = list(state.get("task_names", []))
        if names != self.task_names:
            raise EdgeReidError(f"DWA state has tasks {names}, but this run has {self.task_names}.")
        if int(state.get("window", -1)) != self.window:
            raise EdgeReidError(f"DWA state has window {state.get('window')}, but this run has {self.window}.")
        self.temperature = float(state["temperature"])
        self.history = {n: [float(v) for v in state["history"][n]] for n in names}
        self.num_updates = int(state.get("num_updates", len(self.history[names[0]])))
