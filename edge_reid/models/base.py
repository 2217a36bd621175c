"""The contract every ReID model follows.

* Input: RGB float batch B x 3 x H x W in [0, 1]. The model normalises it with its
  :class:`InputNormalizer` (the one place mean/std are applied in the whole toolkit).
* Training mode: ``forward`` returns a dict with at least ``logits`` (B x num_classes) and
  ``features`` (the pooled features before BNNeck, B x D); models add their own outputs
  (``semantic_logits``, ``scale_weights``, ``fused_map``, ``stem_features``, ...).
* Eval mode: ``forward`` returns B x D L2-normalised embeddings (the BNNeck output).
"""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from edge_reid.metadata import IMAGENET_MEAN, IMAGENET_STD, ModelMeta


class InputNormalizer(nn.Module):
    """(x - mean) / std with the constants stored as buffers (they export with the model)."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ReIDModel(nn.Module):
    """Base class: input normalisation, the train/eval forward contract, metadata.

    Subclasses implement :meth:`forward_train` (returning the training dict, which must
    contain ``embeddings``: the BNNeck output used at test time).
    """

    model_name: str = "unnamed"
    model_options: Dict[str, Any]
    #: graph inputs beyond the image batch that ``forward`` takes by keyword ("modality", "camera_ids")
    extra_inputs: Tuple[str, ...] = ()

    def __init__(
        self,
        embedding_dim: int,
        input_size: Tuple[int, int] = (256, 128),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.embedding_dim = int(embedding_dim)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.normalizer = InputNormalizer(mean, std)
        self.model_options = {}

    def forward_train(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def pooled_outputs(self, stem: torch.Tensor, final_map: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The training dict of a GAP + BNNeck model (``self.head``) from its stem and last map."""
        features = final_map.mean(dim=(2, 3))
        embeddings, logits = self.head(features)
        return {
            "logits": logits,
            "features": features,
            "embeddings": embeddings,
            "stem_features": stem.mean(dim=(2, 3)).detach(),
        }

    def forward(self, x: torch.Tensor):  # type: ignore[override]
        out = self.forward_train(self.normalizer(x))
        if self.training:
            return out
        return F.normalize(out["embeddings"], dim=1)

    @property
    def num_classes(self) -> int:
        return int(getattr(self, "num_classes_", 0))

    def meta(self, dataset: str = "unknown") -> ModelMeta:
        """The metadata to store with any artifact made from this model."""
        return ModelMeta(
            model=self.model_name,
            input_size=self.input_size,
            embedding_dim=self.embedding_dim,
            num_ids=self.num_classes,
            mean=tuple(round(v, 6) for v in self.normalizer.mean.flatten().tolist()),
            std=tuple(round(v, 6) for v in self.normalizer.std.flatten().tolist()),
            dataset=dataset,
            model_options={k: v for k, v in self.model_options.items() if k != "pretrained"},
            inputs=("images", *self.extra_inputs),
        )


def example_extra_inputs(model: nn.Module, batch: int, device: Any = "cpu") -> Dict[str, torch.Tensor]:
    """Zero-valued int64 tensors (length ``batch``) for each of the model's ``extra_inputs``.

    For callers that run a model on example images (FLOP counting, ONNX export, parity):
    camera 0, visible modality. A model without extra inputs gets ``{}``.
    """
    names = tuple(getattr(model, "extra_inputs", ()))
    return {name: torch.zeros(int(batch), dtype=torch.long, device=device) for name in names}
