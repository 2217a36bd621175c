"""Identity cross-entropy with label smoothing (the L_id term of every ReID recipe)."""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from edge_reid.errors import EdgeReidError
from edge_reid.losses.registry import LOSSES, ReIDLoss, check_probability


@LOSSES.register("cross_entropy")
class CrossEntropyLabelSmooth(ReIDLoss):
    """Cross-entropy on ``logits`` with label smoothing ``label_smoothing`` (alias ``epsilon``).

    Smoothing keeps the classifier from over-fitting the few images each identity has.
    ``logits_key`` picks the model output (default ``logits``; FusionReID has one per feature).
    """

    name = "cross_entropy"
    requires = ("logits",)

    def __init__(self, label_smoothing: Optional[float] = None, epsilon: Optional[float] = None,
                 logits_key: str = "logits") -> None:
        super().__init__()
        self.logits_key = str(logits_key)
        self.requires = (self.logits_key,)
        if label_smoothing is not None and epsilon is not None:
            raise EdgeReidError("Loss 'cross_entropy' got both 'label_smoothing' and 'epsilon'; give only one.")
        value = label_smoothing if label_smoothing is not None else epsilon
        self.label_smoothing = check_probability(0.1 if value is None else value, "label_smoothing", self.name)

    def compute(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        logits = outputs[self.logits_key]
        if logits.dim() != 2 or logits.shape[0] != targets.shape[0]:
            raise EdgeReidError(
                f"Loss 'cross_entropy' expects '{self.logits_key}' of shape B x num_ids matching {targets.shape[0]} targets, "
                f"got {tuple(logits.shape)}."
            )
        return F.cross_entropy(logits.float(), targets.long(), label_smoothing=self.label_smoothing)
