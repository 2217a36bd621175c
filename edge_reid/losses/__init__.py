"""Losses: one per file in the ``LOSSES`` registry, Dynamic Weight Averaging and the composer.

Built-in terms: ``cross_entropy``, ``triplet``, ``fidi``, ``semantic``. Build a training loss
with ``LossComposer.from_config(cfg)``.
"""

from edge_reid.losses.registry import LOSSES, ReIDLoss, check_outputs
from edge_reid.losses import cross_entropy, fidi, semantic, triplet  # noqa: F401  (registers the terms)
from edge_reid.losses import ibb  # noqa: F401  (registers ibb)
from edge_reid.losses import wrt  # noqa: F401  (registers wrt, the AGW metric loss)
from edge_reid.losses import msi, mss  # noqa: F401  (registers the TMPA terms)
from edge_reid.losses.composer import LossComposer, LossResult
from edge_reid.losses.dwa import DynamicWeightAveraging
from edge_reid.losses.fidi import fidi_loss
from edge_reid.losses.semantic import semantic_pseudo_labels

__all__ = [
    "LOSSES",
    "ReIDLoss",
    "check_outputs",
    "LossComposer",
    "LossResult",
    "DynamicWeightAveraging",
    "fidi_loss",
    "semantic_pseudo_labels",
]
