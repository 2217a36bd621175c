"""A searched architecture as a plain config, and the model ``dcs_searched`` built from it.

The config (JSON/YAML; ``export_arch`` writes it) lists the chosen block and width of every layer::

    {"format": "edge_reid.dcs_searched/1", "space": "tiny", "stem_channels": 8, "final_channels": 64,
     "form": "linear", "key_stride": 2,
     "stages": [{"dcs": false, "layers": [{"cout": 8, "stride": 1, "block": "e1.0_k3"}]},
                {"dcs": true, "layers": [{"cout": 12, "stride": 2, "block": "e3.0_k5"},
                                         {"cout": 12, "stride": 1, "block": "skip", "residual": true}]}]}

``residual`` is optional (default: stride 1 and equal widths). When ``space`` names a known
search space, every layer must lie in it: its stride, block and width (``cout`` within the
channel range of its row); a value outside is one clear error. ``form`` and ``key_stride``
(optional) are the DCS-Attention options the search used; the model's own options override them.

``build_model("dcs_searched", num_classes, arch=config_or_path)`` builds stem conv -> layers with
DCS-Attention after each ``dcs`` stage -> 1x1 conv -> GAP -> BNNeck, trained and exported like
any other model. Pass the config itself (not a path) in training configs so that checkpoints
carry the architecture in their metadata.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.models.base import ReIDModel
from edge_reid.models.baselines import parse_input_size
from edge_reid.models.dcs_attention import DCSAttention
from edge_reid.models.dcs_attention import check_form
from edge_reid.models.dnas.space import SKIP, SPACES, candidate_key, conv_bn, make_block
from edge_reid.models.heads import BNNeckHead
from edge_reid.models.registry import MODELS
from edge_reid.utils.atomic import atomic_write_json

ARCH_FORMAT = "edge_reid.dcs_searched/1"
_BLOCK = re.compile(r"^e(\d+(?:\.\d+)?)_k(\d+)$")


def parse_block(key: str) -> Any:
    """``"e3.0_k5"`` -> (3.0, 5); ``"skip"`` -> ``"skip"``."""
    if key == SKIP:
        return SKIP
    match = _BLOCK.match(str(key))
    if not match:
        raise InvalidInputError(f"Unknown block '{key}' in the architecture; expected 'e<ratio>_k<kernel>' or 'skip'.")
    kernel = int(match.group(2))
    if kernel % 2 == 0:
        raise InvalidInputError(f"Block '{key}' has an even kernel size; kernel sizes must be odd.")
    return float(match.group(1)), kernel


def load_arch(arch: Union[Mapping[str, Any], str, Path]) -> Dict[str, Any]:
    """The architecture config from a mapping or a JSON/YAML file, checked."""
    if isinstance(arch, (str, Path)):
        path = Path(arch)
        if not path.is_file():
            raise InvalidInputError(f"Architecture file {path} does not exist.")
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            arch = yaml.safe_load(text)
        else:
            try:
                arch = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"Architecture file {path} is not valid JSON ({exc.msg}).") from None
    if not isinstance(arch, Mapping) or arch.get("format") != ARCH_FORMAT:
        raise InvalidInputError(f"The architecture must be a mapping with format '{ARCH_FORMAT}'.")
    try:
        stem, final = int(arch["stem_channels"]), int(arch["final_channels"])
        stages = [{"dcs": bool(s.get("dcs", True)),
                   "layers": [dict({"cout": int(l["cout"]), "stride": int(l["stride"]), "block": str(l["block"])},
                                   **({"residual": bool(l["residual"])} if "residual" in l else {}))
                              for l in s["layers"]]} for s in arch["stages"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"The architecture config is malformed ({type(exc).__name__}: {exc}).") from None
    if stem < 1 or final < 1 or not stages or not all(s["layers"] for s in stages):
        raise InvalidInputError("The architecture needs positive channel counts and at least one layer per stage.")
    for s in stages:
        for l in s["layers"]:
            parse_block(l["block"])
    cfg = {"format": ARCH_FORMAT, "space": str(arch.get("space", "custom")), "stem_channels": stem,
           "final_channels": final, "stages": stages}
    for key in ("form", "key_stride"):
        if key in arch:
            cfg[key] = arch[key]
    check_form(cfg.get("form", "linear"), cfg.get("key_stride", 2))
    if cfg["space"] in SPACES:
        check_in_space(cfg)
    return cfg


def check_in_space(cfg: Mapping[str, Any]) -> None:
    """Every layer of ``cfg`` is one the named search space offers (stride, block, width in its range)."""
    space = SPACES[cfg["space"]]
    specs = space.layers()
    layers = [(s, l) for s, stage in enumerate(cfg["stages"]) for l in stage["layers"]]
    if [s for s, _ in layers] != [spec["stage"] for spec in specs] or cfg["stem_channels"] != space.stem_channels \
            or cfg["final_channels"] != space.final_channels:
        raise InvalidInputError(f"The architecture does not have the stages, layers, stem or final width of search space "
                                f"'{space.name}' it names; set 'space' to 'custom' for a hand-made architecture.")
    group_width: Dict[int, int] = {}
    for i, ((s, layer), spec) in enumerate(zip(layers, specs)):
        where = f"Layer {i} (stage {s}) of the '{space.name}' architecture"
        widths = spec["widths"]
        if layer["cout"] not in widths:
            step = widths[1] - widths[0] if len(widths) > 1 else 0
            span = f"{widths[0]}-{widths[-1]} in steps of {step}" if step else f"{widths[0]}"
            raise InvalidInputError(f"{where} has width {layer['cout']}, outside its range {span}.")
        if group_width.setdefault(spec["group"], layer["cout"]) != layer["cout"]:
            raise InvalidInputError(f"{where} has width {layer['cout']}, but its channel group uses {group_width[spec['group']]}.")
        if layer["stride"] != spec["stride"]:
            raise InvalidInputError(f"{where} has stride {layer['stride']}, the space has {spec['stride']} there.")
        if layer["block"] not in [candidate_key(c) for c in spec["candidates"]]:
            raise InvalidInputError(f"{where} has block '{layer['block']}', which the space does not offer there.")


def export_arch(arch: Mapping[str, Any], path: Union[str, Path]) -> Path:
    """Check ``arch`` and write it as JSON (atomically); return the path."""
    path = Path(path)
    atomic_write_json(path, load_arch(arch))
    return path


class SearchedReID(ReIDModel):
    """The network an architecture config describes (see the module docstring)."""

    def __init__(self, num_classes: int, arch: Mapping[str, Any], tau: float = 1.0, vanilla: bool = False,
                 input_size: Tuple[int, int] = (256, 128), form: Optional[str] = None,
                 key_stride: Optional[int] = None) -> None:
        cfg = load_arch(arch)
        form = form if form is not None else cfg.get("form", "linear")
        key_stride = key_stride if key_stride is not None else cfg.get("key_stride", 2)
        check_form(form, key_stride)
        super().__init__(embedding_dim=cfg["final_channels"], input_size=input_size)
        self.num_classes_ = int(num_classes)
        self.arch = cfg
        self.stem = conv_bn(3, cfg["stem_channels"], 3, stride=2)
        stages: List[nn.Module] = []
        self.attention = nn.ModuleDict()
        cin = cfg["stem_channels"]
        for s, stage in enumerate(cfg["stages"]):
            blocks = []
            for layer in stage["layers"]:
                try:
                    blocks.append(make_block(cin, layer["cout"], layer["stride"], parse_block(layer["block"]),
                                             layer.get("residual")))
                except InvalidInputError as exc:
                    raise InvalidInputError(f"Stage {s} of the architecture: {exc}") from None
                cin = layer["cout"]
            stages.append(nn.Sequential(*blocks))
            if stage["dcs"]:
                self.attention[str(s)] = DCSAttention(cin, tau=tau, vanilla=vanilla, form=form, key_stride=key_stride)
        self.stages = nn.ModuleList(stages)
        self.model_options = {"form": form, "key_stride": key_stride}
        self.final = conv_bn(cin, cfg["final_channels"], 1)
        self.head = BNNeckHead(cfg["final_channels"], self.num_classes_)

    def forward_train(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        stem = self.stem(x)
        y = stem
        for s, stage in enumerate(self.stages):
            y = stage(y)
            if str(s) in self.attention:
                y = self.attention[str(s)](y)
        features = self.final(y).mean(dim=(2, 3))
        embeddings, logits = self.head(features)
        return {"logits": logits, "features": features, "embeddings": embeddings,
                "stem_features": stem.mean(dim=(2, 3)).detach()}


@MODELS.register("dcs_searched")
def dcs_searched(num_classes: int, arch: Optional[Union[Mapping[str, Any], str]] = None, tau: float = 1.0,
                 vanilla: bool = False, form: Optional[str] = None, key_stride: Optional[int] = None,
                 input_size: Tuple[int, int] = (256, 128)) -> SearchedReID:
    """A DCS-DNAS searched network; ``arch`` is the exported architecture config (or its file);
    ``form`` / ``key_stride`` default to the ones the architecture records (else linear, 2)."""
    if arch is None:
        raise InvalidInputError("Model 'dcs_searched' needs the option 'arch' (an exported architecture config or file).")
    return SearchedReID(num_classes, arch, tau=tau, vanilla=vanilla, input_size=parse_input_size(input_size),
                        form=form, key_stride=key_stride)


# Checkpoints written before ``form`` was recorded used the softmax form (edge_reid.models.checkpoint).
dcs_searched.unrecorded_defaults = {"form": "softmax"}  # type: ignore[attr-defined]
