"""TMPA: the MFT site (shapes, routing, gradients, attention against a float64 reference) and the
model's train / eval forward contracts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.models import build_model
from edge_reid.models.mft import MFTGenerator, MFTSite

SIZE = (32, 16)
MOD = torch.tensor([0, 1, 1, 0])


def _perturb(module: torch.nn.Module, seed: int = 0) -> None:
    """Random BN statistics/affines (so eval differs from train) and a non-zero fusion scale."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))


@pytest.fixture()
def site() -> MFTSite:
    torch.manual_seed(0)
    return MFTSite(channels=16, width=8, heads=2, kernel=3)


def test_site_shapes_and_identity_at_initialisation(site: MFTSite) -> None:
    x = torch.rand(4, 16, 5, 3)
    out = site(x, MOD)
    assert out["out"].shape == x.shape
    assert out["shared"].shape == (4, 16, 5, 3)
    assert out["specific_visible"].shape == out["specific_infrared"].shape == (4, 8, 5, 3)
    torch.testing.assert_close(out["out"], x)  # the fusion's BN scale starts at zero: TMPA starts as AGW
    assert (out["specific_visible"] >= 0).all() and (out["specific_infrared"] >= 0).all()


def test_site_real_and_generated_features_sit_in_their_modality_slots(site: MFTSite) -> None:
    _perturb(site)
    site.eval()
    x = torch.rand(4, 16, 5, 3)
    with torch.no_grad():
        out = site(x, MOD)
        real_v, real_i = site.specific[0](x), site.specific[1](x)
        gen_i, gen_v = site.generators[0](real_v, x), site.generators[1](real_i, x)
    vis, ir = [0, 3], [1, 2]
    torch.testing.assert_close(out["specific_visible"][vis], real_v[vis])
    torch.testing.assert_close(out["specific_infrared"][vis], gen_i[vis])
    torch.testing.assert_close(out["specific_infrared"][ir], real_i[ir])
    torch.testing.assert_close(out["specific_visible"][ir], gen_v[ir])
    assert not torch.allclose(out["out"], x)  # perturbed fusion scale: the site now changes the map


def test_site_gradients_reach_every_part(site: MFTSite) -> None:
    with torch.no_grad():
        site.fuse[1].weight.fill_(0.5)
    x = torch.rand(4, 16, 5, 3, requires_grad=True)
    out = site(x, MOD)
    (out["out"].square().mean() + out["specific_visible"].mean() + out["specific_infrared"].mean()
     + out["shared"].mean()).backward()
    for name, p in site.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_site_with_one_modality_trains_only_that_direction(site: MFTSite) -> None:
    x = torch.rand(3, 16, 5, 3)
    out = site(x, torch.zeros(3, dtype=torch.long))
    out["specific_infrared"].sum().backward()  # the generated infrared feature of visible samples
    assert site.generators[0].query.weight.grad.abs().sum() > 0
    assert site.generators[1].query.weight.grad is None
    assert site.specific[1][0].weight.grad is None


def _attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int) -> np.ndarray:
    """Per sample, head and query position: softmax over key positions of q.k / sqrt(d), times v."""
    b, c, h, w = q.shape
    d = c // heads
    out = np.zeros_like(q)
    for s in range(b):
        for head in range(heads):
            ch = slice(head * d, (head + 1) * d)
            qs, ks, vs = (t[s, ch].reshape(d, h * w) for t in (q, k, v))
            for n in range(h * w):
                logits = np.array([qs[:, n] @ ks[:, j] for j in range(h * w)]) / math.sqrt(d)
                weights = np.exp(logits - logits.max())
                weights /= weights.sum()
                out[s, ch].reshape(d, h * w)[:, n] = vs @ weights
    return out


def test_attention_path_matches_float64_reference() -> None:
    gen = MFTGenerator(channels=6, width=8, heads=2, kernel=3).double()
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 8, 3, 2)) for _ in range(3))
    got = gen.attention(*(torch.tensor(t) for t in (q, k, v))).numpy()
    np.testing.assert_allclose(got, _attention_reference(q, k, v, heads=2), rtol=1e-10, atol=1e-12)


def test_convolution_path_is_local_and_generator_checks_options() -> None:
    gen = MFTGenerator(channels=6, width=8, heads=2, kernel=3).eval()
    q, k, v = (torch.zeros(1, 8, 7, 7) for _ in range(3))
    v[0, :, 0, 0] = 1.0  # an impulse in a corner reaches at most one position further per axis
    with torch.no_grad():
        diff = (gen.convolution(q, k, v) - gen.convolution(q, k, torch.zeros_like(v))).abs().sum(dim=1)[0]
    assert diff[:2, :2].sum() > 0 and diff[2:, :].sum() == 0 and diff[:, 2:].sum() == 0
    with pytest.raises(InvalidInputError, match="divisible"):
        MFTGenerator(channels=6, width=9, heads=2)
    with pytest.raises(InvalidInputError, match="odd"):
        MFTGenerator(channels=6, width=8, heads=2, kernel=2)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("tmpa", num_classes=5, input_size=SIZE)


def test_train_forward_contract(model) -> None:
    model.train()
    out = model(torch.rand(4, 3, *SIZE), modality=MOD)
    width = 1024 // 8 + 2048 // 8
    shapes = {"logits": (4, 5), "features": (4, 2048), "embeddings": (4, 2048), "shared": (4, 2 * width),
              "specific_visible": (4, width), "specific_infrared": (4, width), "modality": (4,),
              "specific_logits": (4, 5), "generated_logits": (4, 5)}
    for key, shape in shapes.items():
        assert tuple(out[key].shape) == shape, key
    assert out["modality"].dtype == torch.int64 and out["modality"].tolist() == MOD.tolist()
    assert not torch.allclose(out["specific_logits"], out["generated_logits"])


def test_eval_forward_contract_and_per_sample_routing(model) -> None:
    _perturb(model.sites, seed=1)
    with torch.no_grad():
        model.infrared_stem[0].weight.mul_(-1.0)
    model.eval()
    x = torch.rand(4, 3, *SIZE)
    with torch.no_grad():
        mixed = model(x, modality=MOD)
        vis = model(x, modality=torch.zeros(4, dtype=torch.long))
        ir = model(x, modality=torch.ones(4, dtype=torch.long))
        single = model(x[1:2], modality=torch.ones(1, dtype=torch.long))  # one infrared image alone
        assert mixed.shape == (4, 2048)
        torch.testing.assert_close(mixed.norm(dim=1), torch.ones(4))
        torch.testing.assert_close(mixed[[0, 3]], vis[[0, 3]])
        torch.testing.assert_close(mixed[[1, 2]], ir[[1, 2]])
        torch.testing.assert_close(single[0], ir[1], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model(x), vis)  # no modality: visible
        assert not torch.allclose(vis, ir)
    assert model.meta("synthetic_vi").inputs == ("images", "modality")
    options = model.meta("synthetic_vi").model_options
    assert options["mft"] is True and options["mft_stages"] == ["layer3", "layer4"] and options["mft_reduction"] == 8


def test_without_mft_it_is_agw() -> None:
    torch.manual_seed(0)
    agw = build_model("agw", num_classes=5, input_size=SIZE).eval()
    plain = build_model("tmpa", num_classes=5, input_size=SIZE, mft=False).eval()
    assert set(plain.state_dict()) == set(agw.state_dict())
    plain.load_state_dict(agw.state_dict())
    x = torch.rand(3, 3, *SIZE)
    mod = torch.tensor([1, 0, 1])
    with torch.no_grad():
        torch.testing.assert_close(plain(x, modality=mod), agw(x, modality=mod))
    plain.train()
    out = plain(x, modality=mod)
    assert "specific_visible" not in out and out["shared"] is out["features"]


def test_untrained_tmpa_equals_agw_with_the_same_trunk() -> None:
    torch.manual_seed(0)
    agw = build_model("agw", num_classes=5, input_size=SIZE).eval()
    full = build_model("tmpa", num_classes=5, input_size=SIZE).eval()
    missing, unexpected = full.load_state_dict(agw.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("sites.", "specific_head.")) for k in missing)
    x = torch.rand(2, 3, *SIZE)
    with torch.no_grad():
        torch.testing.assert_close(full(x, modality=torch.tensor([0, 1])), agw(x, modality=torch.tensor([0, 1])))


@pytest.mark.parametrize("options, message", [
    ({"mft_stages": ["layer5"]}, "unknown stage 'layer5'"),
    ({"mft_stages": ["layer4", "layer4"]}, "twice"),
    ({"mft_stages": []}, "at least one stage"),
    ({"mft_reduction": 0}, "positive integer"),
    ({"mft_heads": 3}, "divisible"),
    ({"mft_width": 3}, "no option 'mft_width'"),
])
def test_bad_options_are_one_sentence(options, message) -> None:
    with pytest.raises(EdgeReidError, match=message):
        build_model("tmpa", num_classes=2, input_size=SIZE, **options)


def _site_macs(c: int, s: int, heads: int, kernel: int, n: int) -> int:
    """Multiply-adds of one MFT site in the eval graph (both extractors and both directions run)."""
    d = s // heads
    generator = c * s + 2 * s * s + 2 * n * s + 3 * heads * kernel ** 2 * d + s * kernel ** 4
    return n * (c * 2 * s + 2 * c * s + 2 * generator + 4 * s * c)


def test_complexity_counter_adds_exactly_the_mft_sites() -> None:
    from edge_reid.bench.complexity import complexity

    torch.manual_seed(0)
    model = build_model("tmpa", num_classes=5, input_size=(64, 32))
    full = complexity(model, (64, 32))
    plain = complexity(build_model("tmpa", num_classes=5, input_size=(64, 32), mft=False), (64, 32))
    n = (64 // 16) * (32 // 16)  # layer3 and layer4 both at 1/16 (last stride 1)
    assert full.macs - plain.macs == _site_macs(1024, 128, 4, 3, n) + _site_macs(2048, 256, 4, 3, n)
    added = list(model.sites.parameters()) + list(model.specific_head.parameters())
    assert full.params - plain.params == sum(p.numel() for p in added)
