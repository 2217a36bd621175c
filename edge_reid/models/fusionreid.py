"""FusionReID (Unity is Strength, arXiv 2412.17239): ResNet50 + ViT-B/16 fused by attention.

Parts (names as in the state dict): ``resnet`` (ResNet50, last stride 1), ``vit`` (ViT-B/16,
overlapping patches with stride 12, camera SIE), ``gem_resnet`` / ``gem_cnn`` / ``gem_vit``
(GeM, learnable p), ``lru_cnn`` / ``lru_vit`` (Local Refinement Units), ``htm`` (the stacked
Heterogeneous Transmission Modules) and ``heads`` (six BNNecks with classifiers). The test
feature is the six features concatenated before their BNs (2048 + 5 x 768 = 5,888-d),
L2-normalised. Sizes and the release's defaults: ``shared/specs/fusionreid.md``; how the
deployed model sees the camera: ``docs/fusionreid.md``.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.models.baselines import ResNet50Stages, parse_input_size
from edge_reid.models.base import ReIDModel
from edge_reid.models.fusionreid_parts import GeM, HTMLayer, LocalRefinementUnit
from edge_reid.models.heads import BNNeckHead
from edge_reid.models.registry import MODELS
from edge_reid.models.vit import VisionTransformer
from edge_reid.models.vit_pretrained import load_vit_weights

#: How the camera reaches the model: ``input`` (camera ids are a model / ONNX input; the
#: release), ``unknown`` (one extra learned "unknown camera" vector that the deployed model
#: always uses; training swaps each image's camera for it with ``unknown_camera_p``) or ``off``.
CAMERA_MODES = ("input", "unknown", "off")
RESNET_STEMS = ("torchvision", "release")
FEATURES = ("resnet", "vit", "lru_cnn", "lru_vit", "htm_cnn", "htm_vit")
_LOCAL_FILES = ("pretrained_resnet", "pretrained_vit")  # local paths: not part of the architecture


class FusionReID(ReIDModel):
    """The dual-branch model; ``forward(x, camera_ids=None)`` (ids needed when ``camera_mode='input'``)."""

    def __init__(
        self,
        num_classes: int,
        num_cameras: int = 6,
        camera_mode: str = "input",
        unknown_camera_p: float = 0.1,
        sie_coef: float = 3.0,
        input_size: Tuple[int, int] = (256, 128),
        mix_dim: int = 768,
        htm_layers: int = 2,
        shared_seu: bool = False,
        resnet_stem: str = "torchvision",
        vit_dim: int = 768,
        vit_depth: int = 12,
        vit_heads: int = 12,
        patch_size: int = 16,
        patch_stride: int = 12,
        drop_path: float = 0.1,
        keep_vit_head: bool = False,
        pretrained_resnet: Optional[str] = None,
        pretrained_vit: Optional[str] = None,
    ) -> None:
        size = parse_input_size(input_size)
        _check_choice("camera_mode", camera_mode, CAMERA_MODES)
        _check_choice("resnet_stem", resnet_stem, RESNET_STEMS)
        if not 1 <= int(htm_layers) <= 6:
            raise InvalidInputError(f"Option htm_layers must be between 1 and 6, got {htm_layers!r}.")
        if camera_mode != "off" and int(num_cameras) < 1:
            raise InvalidInputError(f"Option num_cameras must be at least 1 with camera_mode '{camera_mode}'.")
        if int(mix_dim) <= 0 or int(mix_dim) % 12:
            raise InvalidInputError(f"Option mix_dim must be a positive multiple of 12 (the HTM's heads), got {mix_dim!r}.")
        super().__init__(embedding_dim=2048 + vit_dim + 4 * mix_dim, input_size=size, mean=(0.5,) * 3, std=(0.5,) * 3)
        self.num_classes_ = int(num_classes)
        self.num_cameras, self.camera_mode = int(num_cameras), camera_mode
        self.unknown_camera_p = float(unknown_camera_p)
        self.extra_inputs = ("camera_ids",) if camera_mode == "input" else ()
        self.resnet = ResNet50Stages(last_stride=1, pretrained=pretrained_resnet)
        if resnet_stem == "release":  # no ReLU after the first BN, 2x2 stride-2 max-pool (same shapes and keys)
            self.resnet.stem = nn.Sequential(self.resnet.stem[0], self.resnet.stem[1], nn.MaxPool2d(2, 2))
        sie_rows = {"input": self.num_cameras, "unknown": self.num_cameras + 1, "off": 0}[camera_mode]
        self.vit = VisionTransformer(size, patch_size, patch_stride, vit_dim, vit_depth, vit_heads,
                                     drop_path=drop_path, num_cameras=sie_rows, sie_coef=sie_coef)
        if pretrained_vit:
            load_vit_weights(self.vit, pretrained_vit)
        if keep_vit_head:  # the release instantiates timm's unused 1000-way ImageNet head; only for its count
            self.vit.head = nn.Linear(vit_dim, 1000)
        self.gem_resnet, self.gem_cnn, self.gem_vit = GeM(), GeM(), GeM()
        self.lru_cnn = LocalRefinementUnit(2048, mix_dim)
        self.lru_vit = LocalRefinementUnit(vit_dim, mix_dim)
        self.htm = nn.ModuleList(HTMLayer(mix_dim, 12, shared_seu) for _ in range(int(htm_layers)))
        dims = (2048, vit_dim, mix_dim, mix_dim, mix_dim, mix_dim)
        self.heads = nn.ModuleDict({name: BNNeckHead(dim, self.num_classes_) for name, dim in zip(FEATURES, dims)})

    # ------------------------------------------------------------------ camera ids
    def camera_index(self, camera_ids: Optional[torch.Tensor], batch: int, device: torch.device) -> Optional[torch.Tensor]:
        """The SIE row of each image (None when SIE is off); checks the ids a user gave."""
        if self.camera_mode == "off":
            return None
        if self.camera_mode == "unknown":
            unknown = torch.full((batch,), self.num_cameras, dtype=torch.long, device=device)
            if camera_ids is None or not self.training:
                return unknown
            swap = torch.rand(batch, device=device) < self.unknown_camera_p
            return torch.where(swap, unknown, _checked_ids(camera_ids, batch, self.num_cameras).to(device))
        if camera_ids is None:
            raise InvalidInputError(
                "This FusionReID model embeds the camera (camera_mode 'input'), so it needs a camera id per image."
            )
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return camera_ids.long()
        return _checked_ids(camera_ids, batch, self.num_cameras).to(device)

    # ------------------------------------------------------------------ forward
    def forward_train(self, x: torch.Tensor, camera_index: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        stem, *_, f4 = self.resnet(x)
        tokens = self.vit(x, camera_index)
        rows, cols = self.vit.grid
        vit_map = tokens[:, 1:].transpose(1, 2).reshape(x.shape[0], -1, rows, cols)
        map_cnn, map_vit = self.lru_cnn(f4), self.lru_vit(vit_map)
        g_cnn, g_vit = self.gem_cnn(map_cnn), self.gem_vit(map_vit)
        p_cnn, p_vit = map_cnn.flatten(2).transpose(1, 2), map_vit.flatten(2).transpose(1, 2)
        h_cnn, h_vit = g_cnn.unsqueeze(1), g_vit.unsqueeze(1)
        for layer in self.htm:
            h_cnn, h_vit = layer(h_cnn, h_vit, p_cnn, p_vit)
        feats = (self.gem_resnet(f4), tokens[:, 0], g_cnn, g_vit, h_cnn.squeeze(1), h_vit.squeeze(1))
        out: Dict[str, torch.Tensor] = {}
        for name, feat in zip(FEATURES, feats):
            _bn, logits = self.heads[name](feat)
            out[f"features_{name}"], out[f"logits_{name}"] = feat, logits
        test_feature = torch.cat(feats, dim=1)
        out["features"] = test_feature  # the six pre-BN features: the test feature (5,888-d by default)
        out["embeddings"] = test_feature
        out["logits"] = sum(out[f"logits_{name}"] for name in FEATURES)  # summed scores, for logging only
        out["stem_features"] = stem.mean(dim=(2, 3)).detach()
        return out

    def forward(self, x: torch.Tensor, camera_ids: Optional[torch.Tensor] = None):  # type: ignore[override]
        out = self.forward_train(self.normalizer(x), self.camera_index(camera_ids, x.shape[0], x.device))
        if self.training:
            return out
        return F.normalize(out["embeddings"], dim=1)

    def meta(self, dataset: str = "unknown") -> ModelMeta:
        meta = super().meta(dataset)
        options = {k: v for k, v in meta.model_options.items() if k not in _LOCAL_FILES}
        # recorded even when left at their defaults: runtimes check camera ids against them
        meta.model_options = {**options, "num_cameras": self.num_cameras, "camera_mode": self.camera_mode}
        return meta


def _checked_ids(camera_ids, batch: int, num_cameras: int) -> torch.Tensor:
    ids = torch.as_tensor(camera_ids)
    if ids.dim() == 0:
        ids = ids.expand(batch)
    if ids.is_floating_point() or ids.dtype == torch.bool or tuple(ids.shape) != (batch,):
        raise InvalidInputError(f"Camera ids must be {batch} integers (one per image), got {ids.dtype} of shape {tuple(ids.shape)}.")
    if batch and (int(ids.min()) < 0 or int(ids.max()) >= num_cameras):
        raise InvalidInputError(
            f"Camera ids must lie in 0..{num_cameras - 1} (the model was built for {num_cameras} cameras), "
            f"got {int(ids.min())}..{int(ids.max())}."
        )
    return ids.long()


def _check_choice(name: str, value: str, choices: Tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"Option {name} must be one of {', '.join(choices)}, got {value!r}.")


MODELS.register("fusionreid")(FusionReID)
