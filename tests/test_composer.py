"""LossComposer: config parsing, total = sum of weights * terms, DWA, epoch hook, state round trip."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from edge_reid.errors import EdgeReidError
from edge_reid.losses import LOSSES, LossComposer
from edge_reid.losses.fidi import fidi_loss

CFG = {
    "terms": [
        {"name": "cross_entropy", "weight": 1.0, "label_smoothing": 0.1},
        {"name": "fidi", "alpha": 1.05, "beta": 0.5},
        {"name": "semantic"},
    ],
    "weighting": {"type": "dwa", "window": 2, "temperature": 2.0},
}


def _outputs(seed: int = 0, b: int = 6):
    g = torch.Generator().manual_seed(seed)
    out = {
        "logits": torch.randn(b, 3, generator=g, requires_grad=True),
        "features": torch.randn(b, 16, generator=g, requires_grad=True),
        "embeddings": torch.randn(b, 16, generator=g),
        "semantic_logits": torch.randn(b, 4, 8, 4, generator=g, requires_grad=True),
        "fused_map": torch.rand(b, 32, 8, 4, generator=g),
    }
    return out, torch.tensor([0, 0, 1, 1, 2, 2])


def test_static_total_is_weighted_sum_and_terms_logged():
    cfg = {"terms": [{"name": "cross_entropy", "weight": 2.0}, {"name": "triplet", "weight": 0.5, "margin": 0.3}]}
    comp = LossComposer.from_config(cfg)
    out, y = _outputs()
    res = comp(out, y)
    assert set(res.terms) == {"cross_entropy", "triplet"} and res.weights == {"cross_entropy": 2.0, "triplet": 0.5}
    ce = nn.functional.cross_entropy(out["logits"], y, label_smoothing=0.1)
    assert res.terms["cross_entropy"].item() == pytest.approx(ce.item(), rel=1e-6)
    expected = sum(res.weights[n] * res.terms[n] for n in res.terms)
    assert res.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(not t.requires_grad for t in res.terms.values())
    res.total.backward()
    assert out["logits"].grad is not None and out["features"].grad is not None


def test_dwa_composer_weights_follow_history_and_total_matches():
    comp = LossComposer.from_config(CFG)
    history = []
    for step in range(7):
        out, y = _outputs(seed=step)
        res = comp(out, y)
        if step < 4:
            assert res.weights == {"cross_entropy": 1.0, "fidi": 1.0, "semantic": 1.0}
        else:
            assert sum(res.weights.values()) == pytest.approx(3.0)
            assert len(set(res.weights.values())) > 1
            # the next-to-apply weights come from the recorded per-term values
            r = {n: (history[-1][n] + history[-2][n]) / (history[-3][n] + history[-4][n]) for n in res.terms}
            z = sum(torch.exp(torch.tensor(v / 2.0, dtype=torch.float64)) for v in r.values())
            for n in res.terms:
                exp_w = 3 * torch.exp(torch.tensor(r[n] / 2.0, dtype=torch.float64)) / z
                assert res.weights[n] == pytest.approx(exp_w.item(), rel=1e-9)
        expected = sum(res.weights[n] * res.terms[n] for n in res.terms)
        assert res.total.item() == pytest.approx(expected.item(), rel=1e-6)
        history.append({n: float(v) for n, v in res.terms.items()})
    assert res.terms["fidi"].item() == pytest.approx(fidi_loss(out["features"], y).item(), rel=1e-6)


def test_state_dict_round_trip_with_weights_only():
    comp = LossComposer.from_config(CFG)
    for step in range(5):
        comp(*_outputs(seed=step))
    buf = io.BytesIO()
    torch.save({"loss": comp.state_dict()}, buf)
    buf.seek(0)
    restored = LossComposer.from_config(CFG)
    restored.load_state_dict(torch.load(buf, weights_only=True)["loss"])
    out, y = _outputs(seed=9)
    a, b = comp(out, y), restored(out, y)
    assert a.weights == b.weights and a.total.item() == b.total.item()


class _EpochCounter(nn.Module):
    """A stateful term like IBB: needs stem_features, counts epochs in a buffer."""

    requires = ("stem_features",)

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.register_buffer("epochs", torch.zeros((), dtype=torch.long))

    def forward(self, outputs, targets):
        return outputs["stem_features"].pow(2).mean() * self.scale

    def on_epoch_end(self, epoch: int) -> None:
        self.epochs += 1


def test_terms_registered_elsewhere_get_epoch_end_and_state():
    name = "test_epoch_counter"
    if name not in LOSSES:
        LOSSES.register(name)(_EpochCounter)
    cfg = {"terms": [{"name": "cross_entropy"}, {"name": name, "weight": 0.1, "scale": 2.0}]}
    comp = LossComposer.from_config(cfg)
    out, y = _outputs()
    with pytest.raises(EdgeReidError, match=f"'{name}'.*'stem_features'"):
        comp(out, y)
    out["stem_features"] = torch.ones(6, 4)
    res = comp(out, y)
    assert res.terms[name].item() == pytest.approx(2.0)
    comp.on_epoch_end(0)
    comp.on_epoch_end(1)
    assert comp.terms[name].epochs.item() == 2
    fresh = LossComposer.from_config(cfg)
    fresh.load_state_dict(comp.state_dict())
    assert fresh.terms[name].epochs.item() == 2


@pytest.mark.parametrize(
    "cfg,match",
    [
        ({"terms": [{"name": "nope"}]}, "Unknown loss term 'nope'"),
        ({"terms": [{"name": "fidi", "gamma": 1}]}, "'fidi'.*unknown option 'gamma'"),
        ({"terms": [{"name": "fidi"}], "weighting": {"type": "magic"}}, "weighting type 'magic'"),
        ({"terms": [{"name": "fidi"}], "weighting": {"type": "dwa", "windw": 3}}, "unknown key 'windw'"),
        ({"terms": [{"name": "fidi"}], "weightng": {}}, "unknown key 'weightng'"),
        ({"terms": []}, "'terms'"),
        ({"terms": [{"name": "fidi", "weight": -1}]}, "'fidi' key 'weight'"),
        ({"terms": [{"name": "fidi"}, {"name": "fidi"}]}, "appears twice"),
        ({"terms": [{"name": "fidi"}], "weighting": {"type": "dwa", "window": 0}}, "window"),
    ],
)
def test_bad_configs_raise_clear_errors(cfg, match):
    with pytest.raises(EdgeReidError, match=match):
        LossComposer.from_config(cfg)


def test_alias_allows_the_same_loss_twice():
    cfg = {"terms": [{"name": "triplet"}, {"name": "triplet", "alias": "triplet_soft", "margin": None}]}
    res = LossComposer.from_config(cfg)(*_outputs())
    assert set(res.terms) == {"triplet", "triplet_soft"}
