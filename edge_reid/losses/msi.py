"""Modality-specific identity (MSI, TMPA; the paper names it only): the feature MFT generates
must carry the identity, and match the real feature of its modality where one exists.

Per sample i of modality m_i with label y_i: the real specific feature is that of m_i, the
generated one ``g_i`` that of t_i = 1 - m_i (``specific_visible`` / ``specific_infrared``
picked by ``modality``); ``P_i`` = the samples j of the batch with y_j = y_i and m_j = t_i,
``c_i`` = the mean of their real t_i-specific features (detached with ``detach_real``), ``A``
= the samples with a non-empty P_i, ``d`` the configured distance::

    L_id    = CE(generated_logits, y) + CE(specific_logits, y)      (batch means)
    L_align = 1/|A| sum_{i in A} d(g_i, c_i)
    MSI     = id_weight * L_id + align_weight * L_align

``specific_logits`` (the real feature through its modality's classifier) trains the two
specific classifiers, ``generated_logits`` (the generated feature through the other one) asks
the generated feature to classify to the same identity. Options: ``id_weight`` (1),
``align_weight`` (1), ``distance`` ("euclidean", default: close in value, not only in
direction; or "cosine"), ``detach_real`` (true: the generator moves towards the real feature,
not the reverse). The alignment needs visible and infrared samples of a common identity in
every batch (``data.modality_balanced: true``); a batch without both modalities is an error.
"""

from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from edge_reid.errors import InvalidInputError
from edge_reid.losses.modality_features import distance_fn, feature_matrix, modality_vector, non_negative
from edge_reid.losses.registry import LOSSES, ReIDLoss


@LOSSES.register("msi")
class ModalitySpecificIdentity(ReIDLoss):
    """Identity + alignment of the generated modality-specific features (module docstring)."""

    name = "msi"
    requires = ("specific_visible", "specific_infrared", "modality", "specific_logits", "generated_logits")

    def __init__(self, id_weight: float = 1.0, align_weight: float = 1.0, distance: str = "euclidean",
                 detach_real: bool = True) -> None:
        super().__init__()
        self.id_weight = non_negative(id_weight, "id_weight", self.name)
        self.align_weight = non_negative(align_weight, "align_weight", self.name)
        self.distance = str(distance)
        self.dist = distance_fn(self.distance, self.name)
        self.detach_real = bool(detach_real)

    def compute(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        b = targets.shape[0]
        y = targets.long()
        m = modality_vector(outputs, b, self.name)
        v = feature_matrix(outputs, "specific_visible", b, self.name)
        r = feature_matrix(outputs, "specific_infrared", b, self.name)
        has = [bool((m == k).any()) for k in (0, 1)]
        if not all(has):
            only = "visible" if has[0] else "infrared"
            raise InvalidInputError(
                f"Loss 'msi' needs visible and infrared samples in every batch, got only {only} ones "
                f"(set data.modality_balanced: true).")
        ir = (m == 1).reshape(-1, 1)
        real = torch.where(ir, r, v)
        generated = torch.where(ir, v, r)
        # counterpart[i, j]: sample j is a real feature of i's missing modality with i's identity
        counterpart = ((y[:, None] == y[None, :]) & (m[:, None] != m[None, :])).float()
        counts = counterpart.sum(dim=1)
        aligned = counts > 0
        if not bool(aligned.any()):
            raise InvalidInputError(
                "Loss 'msi' needs at least one identity with both visible and infrared samples in the batch, found none.")
        target = real.detach() if self.detach_real else real
        centers = (counterpart @ target)[aligned] / counts[aligned, None]
        l_align = self.dist(generated[aligned], centers).mean()
        l_id = F.cross_entropy(outputs["generated_logits"].float(), y) + F.cross_entropy(outputs["specific_logits"].float(), y)
        return self.id_weight * l_id + self.align_weight * l_align
