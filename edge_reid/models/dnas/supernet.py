"""The DCS-DNAS supernet: every layer mixes its candidate blocks with Gumbel-softmax weights.

Each :class:`MixedLayer` holds one architecture logit per candidate (``arch_logits``). In
training the output is sum_i w_i op_i(x) with w = gumbel_softmax(logits, tau); in eval mode
w = softmax(logits). The expected latency sum_i w_i LAT_i (from a measured latency table) is
returned with the usual training outputs as ``latency`` (microseconds) for the FBNet-style cost.
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


class MixedLayer(nn.Module):
    """One searchable layer: candidate blocks and their architecture logits."""

    def __init__(self, cin: int, cout: int, stride: int, candidates: Sequence[Any]) -> None:
        super().__init__()
        self.candidates = list(candidates)
        self.ops = nn.ModuleList(make_block(cin, cout, stride, c) for c in self.candidates)
        self.arch_logits = nn.Parameter(torch.zeros(len(self.candidates)))
        self.register_buffer("latency_us", torch.zeros(len(self.candidates)))
        self.tau = 5.0
        self.last_weights: Optional[torch.Tensor] = None

    def weights(self) -> torch.Tensor:
        if self.training:
            return F.gumbel_softmax(self.arch_logits, tau=self.tau, hard=False)
        return torch.softmax(self.arch_logits, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weights()
        self.last_weights = w
        return sum(wi * op(x) for wi, op in zip(w, self.ops))  # type: ignore[return-value]

    def expected_latency(self) -> torch.Tensor:
        w = self.last_weights if self.last_weights is not None else torch.softmax(self.arch_logits, 0)
        return (w * self.latency_us).sum()

    def choice(self) -> Any:
        """The candidate with the largest architecture logit."""
        return self.candidates[int(self.arch_logits.argmax())]


class DCSSupernet(ReIDModel):
    """stem -> mixed layers, DCS-Attention after each ``dcs`` stage -> 1x1 conv -> GAP -> BNNeck."""

    def __init__(self, space: SearchSpace, num_classes: int, input_size: Tuple[int, int] = (256, 128),
                 tau: float = 1.0) -> None:
        super().__init__(embedding_dim=space.final_channels, input_size=input_size)
        self.space = space
        self.num_classes_ = int(num_classes)
        self.stem = conv_bn(3, space.stem_channels, 3, stride=2)
        self.layer_specs = space.layers()
        self.mixed = nn.ModuleList(
            MixedLayer(l["cin"], l["cout"], l["stride"], l["candidates"]) for l in self.layer_specs
        )
        self.attention = nn.ModuleDict(
            {str(s): DCSAttention(stage.rows[-1].channels, tau=tau) for s, stage in enumerate(space.stages) if stage.dcs}
        )
        self.final = conv_bn(space.stages[-1].rows[-1].channels, space.final_channels, 1)
        self.head = BNNeckHead(space.final_channels, self.num_classes_)
        self.model_name = f"dcs_supernet_{space.name}"

    def forward_train(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        stem = self.stem(x)
        y = stem
        for i, (spec, layer) in enumerate(zip(self.layer_specs, self.mixed)):
            y = layer(y)
            last_of_stage = i + 1 == len(self.layer_specs) or self.layer_specs[i + 1]["stage"] != spec["stage"]
            if last_of_stage and str(spec["stage"]) in self.attention:
                y = self.attention[str(spec["stage"])](y)
        features = self.final(y).mean(dim=(2, 3))
        embeddings, logits = self.head(features)
        latency = torch.stack([m.expected_latency() for m in self.mixed]).sum()
        return {"logits": logits, "features": features, "embeddings": embeddings,
                "stem_features": stem.mean(dim=(2, 3)).detach(), "latency": latency}

    def set_gumbel_tau(self, tau: float) -> None:
        for m in self.mixed:
            m.tau = float(tau)

    def set_latency_table(self, table: Dict[str, Any]) -> None:
        """Copy per-candidate latencies (microseconds) from :func:`measure_latency_table`'s result."""
        layers = table.get("layers", [])
        if len(layers) != len(self.mixed):
            raise InvalidInputError(
                f"The latency table has {len(layers)} layers but the supernet has {len(self.mixed)}; re-measure it."
            )
        for m, row in zip(self.mixed, layers):
            try:
                values = [float(row[candidate_key(c)]) for c in m.candidates]
            except KeyError as exc:
                raise InvalidInputError(f"The latency table lacks candidate {exc}; re-measure it.") from None
            m.latency_us.copy_(torch.tensor(values))

    def arch_parameters(self) -> Iterator[nn.Parameter]:
        """Architecture parameters: the mixed layers' logits and the DCS sampling layers (Adam, held-out ids)."""
        for m in self.mixed:
            yield m.arch_logits
        for a in self.attention.values():
            if a.sampler is not None:  # type: ignore[union-attr]
                yield from a.sampler.parameters()  # type: ignore[union-attr]

    def weight_parameters(self) -> List[nn.Parameter]:
        """Every other trainable parameter (SGD, the remaining ids)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch and p.requires_grad]

    def derive_arch(self) -> Dict[str, Any]:
        """The architecture config of the most likely candidate of every layer."""
        stages: List[Dict[str, Any]] = [
            {"dcs": bool(stage.dcs), "layers": []} for stage in self.space.stages
        ]
        for spec, m in zip(self.layer_specs, self.mixed):
            stages[spec["stage"]]["layers"].append(
                {"cout": spec["cout"], "stride": spec["stride"], "block": candidate_key(m.choice())}
            )
        return {"format": ARCH_FORMAT, "space": self.space.name, "stem_channels": self.space.stem_channels,
                "final_channels": self.space.final_channels, "stages": stages}

    def arch_probabilities(self) -> List[Dict[str, float]]:
        """softmax(arch logits) per layer, keyed by candidate (for logs)."""
        return [{candidate_key(c): round(float(p), 4) for c, p in zip(m.candidates, torch.softmax(m.arch_logits.detach(), 0))}
                for m in self.mixed]
