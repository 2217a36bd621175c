"""The DCS-DNAS supernet: Gumbel-softmax over candidate blocks and, FBNetV2-style, over widths.

* Each :class:`MixedLayer` holds one architecture logit per candidate block (``arch_logits``):
  its output is sum_i w_i op_i(x), w = gumbel_softmax(logits, tau) in training, softmax in eval.
* Each channel group (:meth:`SearchSpace.layers`) has a :class:`WidthChoice`: one weight tensor
  at the widest width, and a mask over its channels, sum_j g_j 1[c < width_j] with g the
  Gumbel-softmax over the candidate widths (FBNetV2's channel masking). Every layer of the group
  multiplies its output by the group's mask, so the residual connections inside a group stay
  exact for any width.

The expected latency sum_i sum_j w_i g_j LAT[i][j] (from the measured table, block i at output
width j) is returned with the usual training outputs as ``latency`` (microseconds) for the
FBNet-style cost.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from edge_reid.errors import InvalidInputError
from edge_reid.models.base import ReIDModel
from edge_reid.models.dcs_attention import DCSAttention
from edge_reid.models.dnas.arch import ARCH_FORMAT
from edge_reid.models.dnas.space import SearchSpace, candidate_key, conv_bn, make_block
from edge_reid.models.heads import BNNeckHead


def _gumbel_or_softmax(logits: torch.Tensor, tau: float, training: bool) -> torch.Tensor:
    return F.gumbel_softmax(logits, tau=tau, hard=False) if training else torch.softmax(logits, dim=0)


class WidthChoice(nn.Module):
    """The width of one channel group: logits over ``widths`` and the channel mask they give."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.widths = [int(w) for w in widths]
        self.width_logits = nn.Parameter(torch.zeros(len(self.widths)))
        columns = torch.arange(max(self.widths))
        self.register_buffer("columns", torch.stack([(columns < w).float() for w in self.widths]))  # J x C
        self.tau = 5.0
        self.last_weights: Optional[torch.Tensor] = None

    def forward(self) -> torch.Tensor:
        """Draw the width weights for this forward pass and return the C-long channel mask."""
        g = _gumbel_or_softmax(self.width_logits, self.tau, self.training)
        self.last_weights = g
        return g @ self.columns

    def weights(self) -> torch.Tensor:
        return self.last_weights if self.last_weights is not None else torch.softmax(self.width_logits, 0)

    def choice(self) -> int:
        return self.widths[int(self.width_logits.argmax())]


class MixedLayer(nn.Module):
    """One searchable layer: candidate blocks (at the widest widths) and their architecture logits."""

    def __init__(self, cin: int, cout: int, stride: int, candidates: Sequence[Any], widths: Sequence[int],
                 residual: bool) -> None:
        super().__init__()
        self.candidates = list(candidates)
        self.residual = bool(residual)
        # the residual is added once, after the mix (so a skip candidate is exactly the identity)
        self.ops = nn.ModuleList(
            nn.Identity() if c == "skip" else make_block(cin, cout, stride, c, residual=False) for c in self.candidates
        )
        self.arch_logits = nn.Parameter(torch.zeros(len(self.candidates)))
        self.register_buffer("latency_us", torch.zeros(len(self.candidates), len(widths)))
        self.tau = 5.0
        self.last_weights: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = _gumbel_or_softmax(self.arch_logits, self.tau, self.training)
        self.last_weights = w
        y = sum(wi * (x if c == "skip" else op(x)) for wi, c, op in zip(w, self.candidates, self.ops))
        y = y * mask.view(1, -1, 1, 1)
        if self.residual and "skip" in self.candidates:
            skip = self.candidates.index("skip")  # the skip candidate's share already is x
            return y + (1.0 - w[skip]) * x
        return x + y if self.residual else y

    def expected_latency(self, width_weights: torch.Tensor) -> torch.Tensor:
        w = self.last_weights if self.last_weights is not None else torch.softmax(self.arch_logits, 0)
        return w @ self.latency_us @ width_weights

    def choice(self) -> Any:
        """The candidate with the largest architecture logit."""
        return self.candidates[int(self.arch_logits.argmax())]


class DCSSupernet(ReIDModel):
    """stem -> mixed layers (width-masked), DCS-Attention after each ``dcs`` stage -> 1x1 conv -> GAP -> BNNeck."""

    def __init__(self, space: SearchSpace, num_classes: int, input_size: Tuple[int, int] = (256, 128),
                 tau: float = 1.0, form: str = "linear", key_stride: int = 2) -> None:
        super().__init__(embedding_dim=space.final_channels, input_size=input_size)
        self.space = space
        self.num_classes_ = int(num_classes)
        self.form, self.key_stride = form, int(key_stride)
        self.stem = conv_bn(3, space.stem_channels, 3, stride=2)
        self.layer_specs = space.layers()
        self.widths = nn.ModuleList(WidthChoice(w) for w in space.groups())
        self.mixed = nn.ModuleList(
            MixedLayer(l["cin"], l["cout"], l["stride"], l["candidates"], l["widths"], l["residual"])
            for l in self.layer_specs
        )
        self.attention = nn.ModuleDict(
            {str(s): DCSAttention(stage.rows[-1].channels, tau=tau, form=form, key_stride=key_stride)
             for s, stage in enumerate(space.stages) if stage.dcs}
        )
        self.final = conv_bn(space.stages[-1].rows[-1].channels, space.final_channels, 1)
        self.head = BNNeckHead(space.final_channels, self.num_classes_)
        self.model_name = f"dcs_supernet_{space.name}"

    def forward_train(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        stem = self.stem(x)
        y = stem
        masks: Dict[int, torch.Tensor] = {}
        for i, (spec, layer) in enumerate(zip(self.layer_specs, self.mixed)):
            if spec["group"] not in masks:
                masks[spec["group"]] = self.widths[spec["group"]]()
            y = layer(y, masks[spec["group"]])
            last_of_stage = i + 1 == len(self.layer_specs) or self.layer_specs[i + 1]["stage"] != spec["stage"]
            if last_of_stage and str(spec["stage"]) in self.attention:  # masked again: BN shifts are not zero
                y = self.attention[str(spec["stage"])](y) * masks[spec["group"]].view(1, -1, 1, 1)
        features = self.final(y).mean(dim=(2, 3))
        embeddings, logits = self.head(features)
        latency = torch.stack([m.expected_latency(self.widths[s["group"]].weights())
                               for s, m in zip(self.layer_specs, self.mixed)]).sum()
        return {"logits": logits, "features": features, "embeddings": embeddings,
                "stem_features": stem.mean(dim=(2, 3)).detach(), "latency": latency}

    def set_gumbel_tau(self, tau: float) -> None:
        for m in list(self.mixed) + list(self.widths):
            m.tau = float(tau)

    def set_latency_table(self, table: Dict[str, Any]) -> None:
        """Copy per-candidate, per-width latencies (microseconds) from :func:`measure_latency_table`'s result."""
        layers = table.get("layers", [])
        if len(layers) != len(self.mixed):
            raise InvalidInputError(
                f"The latency table has {len(layers)} layers but the supernet has {len(self.mixed)}; re-measure it."
            )
        for m, spec, row in zip(self.mixed, self.layer_specs, layers):
            try:
                values = [[float(row[candidate_key(c)][str(w)]) for w in spec["widths"]] for c in m.candidates]
            except (KeyError, TypeError) as exc:
                raise InvalidInputError(f"The latency table lacks candidate/width {exc}; re-measure it.") from None
            m.latency_us.copy_(torch.tensor(values))

    def arch_parameters(self) -> Iterator[nn.Parameter]:
        """Architecture parameters: block logits, width logits and the DCS sampling layers (Adam)."""
        for m in self.mixed:
            yield m.arch_logits
        for w in self.widths:
            yield w.width_logits
        for a in self.attention.values():
            if a.sampler is not None:  # type: ignore[union-attr]
                yield from a.sampler.parameters()  # type: ignore[union-attr]

    def weight_parameters(self) -> List[nn.Parameter]:
        """Every other trainable parameter (SGD)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch and p.requires_grad]

    def derive_arch(self) -> Dict[str, Any]:
        """The architecture config of the most likely block of every layer at its group's most likely width."""
        stages: List[Dict[str, Any]] = [{"dcs": bool(stage.dcs), "layers": []} for stage in self.space.stages]
        for spec, m in zip(self.layer_specs, self.mixed):
            stages[spec["stage"]]["layers"].append(
                {"cout": self.widths[spec["group"]].choice(), "stride": spec["stride"],
                 "block": candidate_key(m.choice()), "residual": bool(spec["residual"])}
            )
        return {"format": ARCH_FORMAT, "space": self.space.name, "stem_channels": self.space.stem_channels,
                "final_channels": self.space.final_channels, "stages": stages,
                "form": self.form, "key_stride": self.key_stride}

    def arch_probabilities(self) -> Dict[str, Any]:
        """softmax of the block logits per layer and of the width logits per group (for logs)."""
        return {
            "blocks": [{candidate_key(c): round(float(p), 4) for c, p in zip(m.candidates, torch.softmax(m.arch_logits.detach(), 0))}
                       for m in self.mixed],
            "widths": [{str(w): round(float(p), 4) for w, p in zip(g.widths, torch.softmax(g.width_logits.detach(), 0))}
                       for g in self.widths],
        }
