"""The loss composer: builds the configured terms from ``LOSSES`` and weights them.

Config::

    {"terms": [{"name": "cross_entropy", "weight": 1.0, "label_smoothing": 0.1},
               {"name": "fidi", "alpha": 1.05, "beta": 0.5},
               {"name": "semantic"}],
     "weighting": {"type": "dwa", "window": 50, "temperature": 2.0}}   # or {"type": "static"}

Each term may also give ``alias`` (its name in logs, needed to use one loss twice); every other
key is passed to the loss's constructor and an unknown one is an error naming it. With static
weighting the weight of a term is its ``weight`` (default 1); with DWA it is ``weight * lambda_k``
(``weight`` defaults to 1, so the total is the spec's sum of lambda_k L_k). Terms registered
later by other packages (IBB) are found by name; terms with ``on_epoch_end(epoch)`` get it
forwarded, and their ``state_dict`` is saved with the DWA history.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn

from edge_reid.errors import EdgeReidError
from edge_reid.losses.dwa import DynamicWeightAveraging
from edge_reid.losses.registry import LOSSES, check_outputs

_TERM_KEYS = ("name", "weight", "alias")
_WEIGHTING_KEYS = {"static": ("type",), "dwa": ("type", "window", "temperature")}


@dataclass
class LossResult:
    """The total to back-propagate, each term's (detached) value and the weight it got."""

    total: torch.Tensor
    terms: Dict[str, torch.Tensor]
    weights: Dict[str, float]


def _build_term(spec: Mapping[str, Any], index: int) -> nn.Module:
    name = spec["name"]
    factory = LOSSES.get(name)
    options = {k: v for k, v in spec.items() if k not in _TERM_KEYS}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not takes_any:
        allowed = [p for p in params if p != "self"]
        unknown = [k for k in options if k not in allowed]
        if unknown:
            known = ", ".join(list(_TERM_KEYS) + allowed)
            raise EdgeReidError(
                f"Loss term {index} ('{name}') has unknown option '{unknown[0]}'; known options: {known}."
            )
    return factory(**options)


class LossComposer(nn.Module):
    """Sum of weighted loss terms; static or DWA weighting."""

    def __init__(
        self,
        terms: Dict[str, nn.Module],
        static_weights: Dict[str, float],
        weighting: str = "static",
        window: int = 50,
        temperature: float = 2.0,
    ) -> None:
        super().__init__()
        if not terms:
            raise EdgeReidError("The loss config needs at least one entry in 'terms'.")
        if weighting not in _WEIGHTING_KEYS:
            raise EdgeReidError(f"Unknown loss weighting type '{weighting}'; known types: dwa, static.")
        self.terms = nn.ModuleDict(terms)
        self.static_weights = {n: float(static_weights.get(n, 1.0)) for n in terms}
        self.weighting = weighting
        self.dwa: Optional[DynamicWeightAveraging] = (
            DynamicWeightAveraging(list(terms), window=window, temperature=temperature) if weighting == "dwa" else None
        )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "LossComposer":
        """Build from a config dict (see the module docstring); bad keys raise :class:`EdgeReidError`."""
        if not isinstance(cfg, Mapping):
            raise EdgeReidError(f"The loss config must be a mapping with 'terms', got {type(cfg).__name__}.")
        unknown = [k for k in cfg if k not in ("terms", "weighting")]
        if unknown:
            raise EdgeReidError(f"The loss config has unknown key '{unknown[0]}'; known keys: terms, weighting.")
        specs = cfg.get("terms")
        if not isinstance(specs, (list, tuple)) or not specs:
            raise EdgeReidError("The loss config key 'terms' must be a non-empty list of {name: ...} entries.")
        terms: Dict[str, nn.Module] = {}
        weights: Dict[str, float] = {}
        for i, spec in enumerate(specs):
            if isinstance(spec, str):
                spec = {"name": spec}
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise EdgeReidError(f"Loss term {i} in 'terms' needs a 'name'.")
            label = str(spec.get("alias", spec["name"]))
            if label in terms:
                raise EdgeReidError(f"Loss term '{label}' appears twice in 'terms'; give one of them an 'alias'.")
            weight = spec.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
                raise EdgeReidError(f"Loss term '{label}' key 'weight' must be a finite number >= 0, got {weight!r}.")
            terms[label] = _build_term(spec, i)
            weights[label] = float(weight)
        wcfg = cfg.get("weighting", {"type": "static"}) or {"type": "static"}
        if not isinstance(wcfg, Mapping):
            raise EdgeReidError("The loss config key 'weighting' must be a mapping like {type: static}.")
        wtype = str(wcfg.get("type", "static"))
        if wtype not in _WEIGHTING_KEYS:
            raise EdgeReidError(f"Unknown loss weighting type '{wtype}' in 'weighting.type'; known types: dwa, static.")
        bad = [k for k in wcfg if k not in _WEIGHTING_KEYS[wtype]]
        if bad:
            raise EdgeReidError(
                f"The '{wtype}' loss weighting has unknown key '{bad[0]}'; known keys: {', '.join(_WEIGHTING_KEYS[wtype])}."
            )
        return cls(terms, weights, wtype, window=wcfg.get("window", 50), temperature=wcfg.get("temperature", 2.0))

    @property
    def names(self) -> List[str]:
        return list(self.terms.keys())

    def current_weights(self) -> Dict[str, float]:
        """The weight each term gets in the next call."""
        if self.dwa is None:
            return dict(self.static_weights)
        lam = self.dwa.weights()
        return {n: self.static_weights[n] * lam[n] for n in self.terms}

    def forward(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> LossResult:  # type: ignore[override]
        """Weighted total of all terms. In training mode the batch's values join the DWA history
        (after the weights were taken); call ``composer.eval()`` for validation losses that must not."""
        for name, term in self.terms.items():
            check_outputs(outputs, tuple(getattr(term, "requires", ())), name)
        weights = self.current_weights()
        values: Dict[str, torch.Tensor] = {}
        total: Optional[torch.Tensor] = None
        for name, term in self.terms.items():
            value = term(outputs, targets)
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise EdgeReidError(f"Loss term '{name}' must return a scalar tensor.")
            value = value.reshape(())
            values[name] = value.detach()
            part = value * weights[name]
            total = part if total is None else total + part
        if self.dwa is not None and self.training and all(bool(torch.isfinite(v)) for v in values.values()):
            self.dwa.update({n: float(v) for n, v in values.items()})
        assert total is not None
        return LossResult(total=total, terms=values, weights=weights)

    def initial_pass_outputs(self) -> List[str]:
        """Model outputs that terms with ``initialise`` (IBB) need from one pass of the initial network."""
        keys: List[str] = []
        for term in self.terms.values():
            if callable(getattr(term, "initialise", None)):
                keys += [k for k in getattr(term, "requires", ()) if k not in keys]
        return keys

    def initialise(self, outputs: Dict[str, torch.Tensor], targets: torch.Tensor) -> Dict[str, Dict[str, float]]:
        """Hand the initial pass (every sample's outputs and label) to the terms that use one; their stats by name."""
        stats: Dict[str, Dict[str, float]] = {}
        for name, term in self.terms.items():
            hook = getattr(term, "initialise", None)
            if callable(hook):
                stats[name] = dict(hook(outputs, targets) or {})
        return stats

    def epoch_stats(self) -> Dict[str, float]:
        """The last epoch's statistics of the terms that keep them (IBB: ibb, ib_loss, entropies), as ``name.key``."""
        out: Dict[str, float] = {}
        for name, term in self.terms.items():
            stats = getattr(term, "epoch_stats", None)
            if callable(stats):
                out.update({f"{name}.{k}": float(v) for k, v in stats().items() if k not in ("epoch", "samples")})
        return out

    def on_epoch_end(self, epoch: int) -> None:
        """Forward the epoch end to every term that defines ``on_epoch_end`` (IBB refreshes its centroids)."""
        for term in self.terms.values():
            hook = getattr(term, "on_epoch_end", None)
            if callable(hook):
                hook(epoch)

    def state_dict(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:  # type: ignore[override]
        """DWA history and each term's own state, as plain containers (``weights_only`` safe)."""
        return {
            "weighting": self.weighting,
            "dwa": self.dwa.state_dict() if self.dwa is not None else None,
            "terms": {n: dict(t.state_dict()) for n, t in self.terms.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> None:  # type: ignore[override]
        """Restore :meth:`state_dict` (the terms and weighting must match this composer's config)."""
        if state.get("weighting") != self.weighting:
            raise EdgeReidError(
                f"The saved loss state uses '{state.get('weighting')}' weighting, but this config uses '{self.weighting}'."
            )
        saved_terms = state.get("terms", {})
        missing = [n for n in self.terms if n not in saved_terms]
        if missing and strict:
            raise EdgeReidError(f"The saved loss state has no entry for term '{missing[0]}'.")
        for n, t in self.terms.items():
            if n in saved_terms:
                t.load_state_dict(saved_terms[n], strict=strict)
        if self.dwa is not None:
            self.dwa.load_state_dict(state["dwa"])
