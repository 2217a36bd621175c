"""VisNet's semantic clustering term: rule-based part pseudo-labels and their cross-entropy.

The pseudo-labels come from the fused map under ``no_grad`` (``shared/specs/visnet.md``): each
position gets a body part from its row (upper body / lower body / shoes) if its feature norm
stands out from the image's other positions, else the background label 3. The semantic head is
trained to predict them, a spatial constraint that costs nothing at test time.
"""

from __future__ import annotations

from typing import Dict, Sequence

import torch
import torch.nn.functional as F

from edge_reid.errors import EdgeReidError
from edge_reid.losses.registry import LOSSES, ReIDLoss, check_probability

BACKGROUND = 3
NUM_SEMANTIC_CLASSES = 4


@torch.no_grad()
def semantic_pseudo_labels(
    fused_map: torch.Tensor, k: float = 0.5, part_bounds: Sequence[float] = (0.4, 0.8)
) -> torch.Tensor:
    """B x H x W labels: 0 upper, 1 lower, 2 shoes by row centre; 3 where the norm is not foreground.

    Foreground: ||F[:, h, w]|| > mean + k * std of that image's H*W norms (population std,
    floored at 1e-6 so a constant map is all background).
    """
    if fused_map.dim() != 4:
        raise EdgeReidError(f"semantic_pseudo_labels expects 'fused_map' B x C x H x W, got {tuple(fused_map.shape)}.")
    upper, lower = float(part_bounds[0]), float(part_bounds[1])
    b, _, h, w = fused_map.shape
    norms = torch.linalg.vector_norm(fused_map.detach().float(), dim=1)  # B x H x W
    flat = norms.reshape(b, -1)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False).clamp_min(1e-6)
    fg = norms > (mean + k * std)[:, None, None]
    y = (torch.arange(h, device=fused_map.device, dtype=torch.float32) + 0.5) / h
    rows = torch.full((h,), 2, dtype=torch.long, device=fused_map.device)
    rows[y < lower] = 1
    rows[y < upper] = 0
    parts = rows[None, :, None].expand(b, h, w)
    return torch.where(fg, parts, torch.full_like(parts, BACKGROUND))


@LOSSES.register("semantic")
class SemanticLoss(ReIDLoss):
    """Plain cross-entropy of ``semantic_logits`` against the fused-map pseudo-labels.

    The paper's Eq. 11 has no label smoothing, so ``label_smoothing`` defaults to 0 (an option).
    """

    name = "semantic"
    requires = ("semantic_logits", "fused_map")

    def __init__(self, k: float = 0.5, label_smoothing: float = 0.0, part_bounds: Sequence[float] = (0.4, 0.8)) -> None:
        super().__init__()
        try:
            self.k = float(k)
        except (TypeError, ValueError):
            raise EdgeReidError(f"Loss 'semantic' option 'k' must be a number, got {k!r}.") from None
        self.label_smoothing = check_probability(label_smoothing, "label_smoothing", self.name)
        try:
            upper, lower = (float(v) for v in part_bounds)
        except (TypeError, ValueError):
            raise EdgeReidError(f"Loss 'semantic' option 'part_bounds' must be two numbers, got {part_bounds!r}.") from None
        if not 0.0 < upper < lower < 1.0:
            raise EdgeReidError(f"Loss 'semantic' option 'part_bounds' must satisfy 0 < upper < lower < 1, got {part_bounds!r}.")
        self.part_bounds = (upper, lower)

    def compute(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        logits, fused = outputs["semantic_logits"], outputs["fused_map"]
        if logits.dim() != 4 or logits.shape[1] != NUM_SEMANTIC_CLASSES:
            raise EdgeReidError(f"Loss 'semantic' expects 'semantic_logits' B x 4 x H x W, got {tuple(logits.shape)}.")
        if fused.dim() != 4 or fused.shape[0] != logits.shape[0] or fused.shape[2:] != logits.shape[2:]:
            raise EdgeReidError(
                f"Loss 'semantic' needs 'fused_map' with the batch and H x W of 'semantic_logits' "
                f"{tuple(logits.shape)}, got {tuple(fused.shape)}."
            )
        labels = semantic_pseudo_labels(fused, self.k, self.part_bounds)
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
