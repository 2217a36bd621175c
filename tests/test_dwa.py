"""DWA: weights are 1 until 2W batches exist, then K * softmax(r / T); exact checkpoint round trip."""

from __future__ import annotations

import io
import math

import pytest
import torch

from edge_reid.errors import EdgeReidError
from edge_reid.losses import DynamicWeightAveraging


def _scripted(step: int) -> dict:
    # Three tasks with different trends: falling, flat-ish, rising.
    return {"a": 2.0 / (1 + 0.3 * step), "b": 1.0 + 0.01 * (step % 2), "c": 0.5 + 0.05 * step}


def _expected(history: dict, window: int, temp: float) -> dict:
    names = list(history)
    r = {}
    for n in names:
        h = history[n]
        r[n] = (sum(h[-window:]) / window) / (sum(h[-2 * window : -window]) / window)
    z = sum(math.exp(r[n] / temp) for n in names)
    return {n: len(names) * math.exp(r[n] / temp) / z for n in names}


def test_dwa_weights_one_until_window_fills_then_formula():
    window, temp = 3, 2.0
    dwa = DynamicWeightAveraging(["a", "b", "c"], window=window, temperature=temp)
    seen = {"a": [], "b": [], "c": []}
    for step in range(12):
        w = dwa.weights()
        if step < 2 * window:
            assert w == {"a": 1.0, "b": 1.0, "c": 1.0}
        else:
            exp = _expected(seen, window, temp)
            for n in w:
                assert w[n] == pytest.approx(exp[n], rel=1e-12)
            assert sum(w.values()) == pytest.approx(3.0)
            assert w["c"] > w["b"] > w["a"]  # the rising loss gets the most weight
        losses = _scripted(step)
        dwa.update(losses)
        for n, v in losses.items():
            seen[n].append(v)


def test_dwa_temperature_flattens_weights():
    sharp = DynamicWeightAveraging(["a", "b"], window=2, temperature=0.5)
    flat = DynamicWeightAveraging(["a", "b"], window=2, temperature=50.0)
    for step in range(4):
        for d in (sharp, flat):
            d.update({"a": 1.0, "b": 1.0 + step})
    assert abs(flat.weights()["a"] - 1) < abs(sharp.weights()["a"] - 1)


def test_dwa_state_round_trip_weights_only_is_bit_exact():
    dwa = DynamicWeightAveraging(["a", "b", "c"], window=4, temperature=2.0)
    for step in range(11):
        dwa.update({k: float(torch.tensor(v, dtype=torch.float32)) for k, v in _scripted(step).items()})
    buf = io.BytesIO()
    torch.save({"dwa": dwa.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["dwa"]
    other = DynamicWeightAveraging(["a", "b", "c"], window=4, temperature=2.0)
    other.load_state_dict(state)
    assert other.history == dwa.history
    assert other.weights() == dwa.weights()
    for step in range(11, 15):
        for d in (dwa, other):
            d.update(_scripted(step))
        assert other.weights() == dwa.weights()


def test_dwa_bad_config_and_mismatched_state():
    with pytest.raises(EdgeReidError, match="window"):
        DynamicWeightAveraging(["a"], window=0)
    with pytest.raises(EdgeReidError, match="temperature"):
        DynamicWeightAveraging(["a"], temperature=0)
    dwa = DynamicWeightAveraging(["a", "b"], window=2)
    with pytest.raises(EdgeReidError, match="'b'"):
        dwa.update({"a": 1.0})
    with pytest.raises(EdgeReidError, match="tasks"):
        DynamicWeightAveraging(["a", "c"], window=2).load_state_dict(dwa.state_dict())
