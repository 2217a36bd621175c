"""AGW: two-stream routing, non-local blocks, GeM, metadata; WRT loss; modality-balanced sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edge_reid.data.sampler import ModalityPKSampler
from edge_reid.errors import InvalidInputError
from edge_reid.losses import LOSSES
from edge_reid.models import build_model
from edge_reid.models.agw import NonLocalBlock, gem_pool


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("agw", num_classes=5, input_size=(32, 16))


def test_stems_route_by_modality_and_eval_matches_train_routing(model) -> None:
    x = torch.rand(4, 3, 32, 16)
    mod = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():  # the stems start as copies: make the infrared one differ
        model.infrared_stem[0].weight.mul_(-1.0)
    model.eval()
    with torch.no_grad():
        mixed = model(x, modality=mod)
        vis = model(x, modality=torch.zeros(4, dtype=torch.long))
        ir = model(x, modality=torch.ones(4, dtype=torch.long))
        torch.testing.assert_close(mixed[[0, 3]], vis[[0, 3]])
        torch.testing.assert_close(mixed[[1, 2]], ir[[1, 2]])
        assert not torch.allclose(vis, ir)
        torch.testing.assert_close(model(x), vis)  # no modality: visible
        assert torch.allclose(mixed.norm(dim=1), torch.ones(4))
    model.train()
    out = model(x, modality=mod)
    assert out["features"].shape == (4, 2048) and out["logits"].shape == (4, 5)
    assert model.meta("d").inputs == ("images", "modality")


def test_structure(model) -> None:
    names = [type(m).__name__ for m in model.body[1]] + [type(m).__name__ for m in model.body[2]]
    assert names.count("NonLocalBlock") == 5
    assert [type(m).__name__ for m in model.body[1]][-3:] == ["NonLocalBlock", "Bottleneck", "NonLocalBlock"]
    assert model.body[3][0].conv2.stride == (1, 1)  # last stride 1
    assert model.visible_stem[0].weight.data_ptr() != model.infrared_stem[0].weight.data_ptr()
    assert not model.head.bn.bias.requires_grad and model.head.classifier.bias is None


def test_non_local_starts_as_identity_and_gem() -> None:
    block = NonLocalBlock(8).eval()
    x = torch.rand(2, 8, 4, 3)
    torch.testing.assert_close(block(x), x)
    f = torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(gem_pool(f, 3.0), (f.pow(3).mean(dim=(2, 3)) + 1e-12).pow(1 / 3))
    assert torch.all(gem_pool(f) >= f.mean(dim=(2, 3)) - 1e-6)


def _wrt_reference(x: np.ndarray, y: np.ndarray) -> float:
    """WRT by the spec, one anchor at a time."""
    n = len(y)
    d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 1e-12))
    losses = []
    for i in range(n):
        pos = [j for j in range(n) if y[j] == y[i]]
        neg = [j for j in range(n) if y[j] != y[i]]
        wp = np.exp(d[i, pos] - d[i, pos].max())
        wp = wp / (wp.sum() + 1e-6)
        wn = np.exp(-d[i, neg] - max(0.0, (-d[i, neg]).max()))
        wn = wn / (wn.sum() + 1e-6)
        dp, dn = (wp * d[i, pos]).sum(), (wn * d[i, neg]).sum()
        losses.append(math.log1p(math.exp(-(dn - dp))))
    return float(np.mean(losses))


def test_wrt_matches_reference_and_backprops() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 6)).astype(np.float32)
    y = np.repeat(np.arange(3), 4)
    feats = torch.tensor(x, requires_grad=True)
    loss = LOSSES.get("wrt")()({"features": feats}, torch.tensor(y))
    assert loss.item() == pytest.approx(_wrt_reference(x.astype(np.float64), y), rel=1e-4)
    loss.backward()
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0


def test_modality_sampler_batches() -> None:
    rng = np.random.default_rng(0)
    pids, mods = [], []
    for pid in range(10):
        for mod, n in ((0, int(rng.integers(1, 8))), (1, int(rng.integers(1, 5)))):
            pids += [pid] * n
            mods += [mod] * n
    pids += [99] * 5
    mods += [0] * 5  # visible only: never drawn
    s = ModalityPKSampler(pids, mods, p=3, k=2, seed=1)
    batches = s.epoch_batches(0)
    assert len(batches) == len(pids) // 12 and s.batch_size == 12
    for batch in batches:
        assert len(batch) == 12
        for j in range(3):
            chunk = batch[j * 4:(j + 1) * 4]
            assert len({pids[i] for i in chunk}) == 1 and pids[chunk[0]] != 99
            assert [mods[i] for i in chunk] == [0, 0, 1, 1]
        assert len({pids[i] for i in batch}) == 3
    assert s.epoch_batches(0) == batches != s.epoch_batches(1)
    s.set_epoch(0, start_batch=1)
    assert list(s) == [i for b in batches[1:] for i in b]
    with pytest.raises(InvalidInputError, match="both visible and infrared"):
        ModalityPKSampler(pids, mods, p=11, k=2)


def test_backbone_lr_factor_keeps_head_at_base_lr() -> None:
    from edge_reid.engine.optim import EpochSchedule, build_optimizer

    net = torch.nn.Module()
    net.body = torch.nn.Linear(3, 3)
    net.head = torch.nn.Linear(3, 2)
    cfg = {"name": "sgd", "lr": 0.1, "weight_decay": 5e-4, "momentum": 0.9, "nesterov": True, "backbone_lr_factor": 0.1}
    opt = build_optimizer(net, cfg)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(net.head.weight)] == pytest.approx(0.1) and lrs[id(net.body.weight)] == pytest.approx(0.01)
    schedule = EpochSchedule({"type": "step", "warmup_epochs": 0, "warmup_factor": 0.1, "milestones": [20, 50],
                              "gamma": 0.1, "min_lr_factor": 0.0}, 81)
    schedule.apply(opt, 0.1, 25)
    lrs = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert lrs[id(net.head.weight)] == pytest.approx(0.01) and lrs[id(net.body.weight)] == pytest.approx(0.001)
