"""TMPA (Transferring Modality-Aware Pedestrian Attentive Learning, arXiv 2312.07021): AGW's
two-stream ResNet50 with Modality Feature Transfer (:mod:`edge_reid.models.mft`) sites.

Pipeline: image -> (PedMix, a data transform) -> two-stream stem -> shared layer1-4 (AGW's
non-local blocks, last stride 1) with an MFT site after the stages in ``mft_stages`` -> GeM ->
BNNeck. Options the paper leaves open, and the defaults chosen here:

* ``mft`` (true): false builds AGW's path exactly (no site), so an ablation switches MFT alone.
* ``mft_stages`` (layer3, layer4): the spec's proposal. Both stages run at 1/16 of the input
  (last stride 1), so a site costs the same number of positions at either.
* ``mft_reduction`` (8): a site's specific width is the stage's channels / 8 (128 after layer3,
  256 after layer4; the shared feature has twice that), keeping MFT light beside the trunk.
* ``mft_heads`` (4) and ``mft_kernel`` (3): ACmix's defaults for the attention heads and the
  convolution path's kernel.

Training outputs: AGW's (``logits``, ``features`` = pooled modality-complete map before BNNeck,
used by WRT, ``embeddings``, ``stem_features``) plus ``shared`` (B x 2S), ``specific_visible``
and ``specific_infrared`` (B x S; GeM-pooled, concatenated over the sites in order, S = the sum
of the site widths; per sample one is real, the other generated), ``modality`` (B, int64),
``specific_logits`` (the real specific feature through its modality's identity classifier) and
``generated_logits`` (the generated one through the other modality's classifier), for MSS/MSI.

Test time, one image of one modality: the image goes through its modality's stem and specific
extractors; MFT generates the other modality's specific feature from it, exactly as in
training; the test feature is the L2-normalised BNNeck output of the fused (modality-complete)
map, the same feature AGW reports. ``modality`` is a graph input (0 visible, 1 infrared);
``modality=None`` means all visible.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.models.agw import AGW, gem_pool
from edge_reid.models.mft import MFTSite
from edge_reid.models.registry import MODELS

STAGES = ("layer1", "layer2", "layer3", "layer4")
CHANNELS = (256, 512, 1024, 2048)


class TMPA(AGW):
    """AGW + MFT sites; train forward adds the shared / specific features and their logits."""

    def __init__(self, num_classes: int, pretrained: Optional[str] = None, input_size: Tuple[int, int] = (288, 144),
                 non_local: Sequence[int] = (0, 2, 3, 0), nl_reduction: int = 2, mft: bool = True,
                 mft_stages: Sequence[str] = ("layer3", "layer4"), mft_reduction: int = 8, mft_heads: int = 4,
                 mft_kernel: int = 3) -> None:
        super().__init__(num_classes, pretrained=pretrained, input_size=input_size, non_local=non_local,
                         nl_reduction=nl_reduction)
        stages = [str(s) for s in mft_stages] if mft else []
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise InvalidInputError(f"Option mft_stages names unknown stage '{unknown[0]}'; known: {', '.join(STAGES)}.")
        if len(set(stages)) != len(stages):
            raise InvalidInputError(f"Option mft_stages lists a stage twice: {list(mft_stages)!r}.")
        if mft and not stages:
            raise InvalidInputError("Option mft_stages must name at least one stage when mft is true.")
        if int(mft_reduction) < 1:
            raise InvalidInputError(f"Option mft_reduction must be a positive integer, got {mft_reduction!r}.")
        self.mft_stages = tuple(s for s in STAGES if s in stages)  # trunk order
        self.sites = nn.ModuleDict({s: MFTSite(CHANNELS[STAGES.index(s)], CHANNELS[STAGES.index(s)] // int(mft_reduction),
                                               heads=int(mft_heads), kernel=int(mft_kernel)) for s in self.mft_stages})
        width = sum(site.width for site in self.sites.values())
        # identity classifiers of the real/generated specific features, one per modality (MSI)
        self.specific_head = nn.ModuleList([nn.Linear(width, num_classes, bias=False) for _ in range(2)]) if width else None
        # recorded in the metadata, so a checkpoint rebuilds the same sites if the defaults change
        self.model_options = {"mft": bool(mft), "mft_stages": list(self.mft_stages), "mft_reduction": int(mft_reduction),
                              "mft_heads": int(mft_heads), "mft_kernel": int(mft_kernel)}

    def forward_train(self, x: torch.Tensor, modality: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        if modality is None:
            modality = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
        modality = modality.to(device=x.device, dtype=torch.long).reshape(-1)
        fmap = stem = self.stems(x, modality)
        pooled: Dict[str, list] = {"shared": [], "specific_visible": [], "specific_infrared": []}
        for name, layer in zip(STAGES, self.body):
            fmap = layer(fmap)
            if name in self.sites:
                site_out = self.sites[name](fmap, modality)
                fmap = site_out["out"]
                for key in pooled:
                    pooled[key].append(gem_pool(site_out[key], self.gem_p))
        features = gem_pool(fmap, self.gem_p)
        embeddings, logits = self.head(features)
        out = {"logits": logits, "features": features, "embeddings": embeddings, "modality": modality,
               "stem_features": stem.mean(dim=(2, 3)).detach()}
        if not self.sites:
            out["shared"] = features
            return out
        out.update({key: torch.cat(parts, dim=1) for key, parts in pooled.items()})
        if self.training and self.specific_head is not None:
            logits_v = self.specific_head[0](out["specific_visible"])
            logits_i = self.specific_head[1](out["specific_infrared"])
            infrared = (modality == 1).reshape(-1, 1)
            out["specific_logits"] = torch.where(infrared, logits_i, logits_v)
            out["generated_logits"] = torch.where(infrared, logits_v, logits_i)
        return out

    def forward(self, x: torch.Tensor, modality: Optional[torch.Tensor] = None):  # type: ignore[override]
        out = self.forward_train(self.normalizer(x), modality)
        if self.training:
            return out
        return F.normalize(out["embeddings"], dim=1)


@MODELS.register("tmpa")
def tmpa(num_classes: int, pretrained: Optional[str] = None, input_size: Tuple[int, int] = (288, 144),
         non_local: Sequence[int] = (0, 2, 3, 0), nl_reduction: int = 2, mft: bool = True,
         mft_stages: Sequence[str] = ("layer3", "layer4"), mft_reduction: int = 8, mft_heads: int = 4,
         mft_kernel: int = 3) -> TMPA:
    """TMPA: AGW two-stream ResNet50 + Modality Feature Transfer after ``mft_stages`` (mft=false: AGW)."""
    return TMPA(num_classes, pretrained=pretrained, input_size=input_size, non_local=tuple(non_local),
                nl_reduction=nl_reduction, mft=bool(mft), mft_stages=tuple(mft_stages), mft_reduction=mft_reduction,
                mft_heads=mft_heads, mft_kernel=mft_kernel)
