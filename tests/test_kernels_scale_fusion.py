"""VisNet fusion: the exact cheaper form vs the paper order, and the Triton weighted sum + GAP.

Paper order = ScaleAttentionFusion.reference_forward (conv over the full map -> BN -> ReLU ->
F.interpolate bilinear align_corners=False -> attention -> weighted sum) plus GAP. Tolerance for
the cheaper form: max abs error <= 1e-4 in float32 for outputs, gradients (inputs and parameters)
and BN running statistics, in eval and train mode. The Triton weighted-sum kernel runs in a
TRITON_INTERPRET=1 subprocess (this file run as a script) so other modules' environment is kept.
"""

import copy
import json

import pytest
import torch

from edge_reid.models.visnet_fusion import ScaleAttentionFusion
from kernels.scale_fusion import AttentionMLP, Projection, scale_fusion, scale_fusion_fast, scale_fusion_reference
from kernels.scale_fusion.fast import bilinear_taps
from kernels.scale_fusion.op import weighted_scale_sum, weighted_sum_reference
from kernels._triton_utils import interpreting
from interpreted import run_interpreted

TOL = 1e-4


def _module(chs, fuse=(1, 2, 3), attention=True, seed=0) -> ScaleAttentionFusion:
    torch.manual_seed(seed)
    m = ScaleAttentionFusion(fuse_stages=fuse, scale_attention=attention, stage_channels=chs, hidden=16)
    for s in m.fuse_stages:  # non-trivial BN state
        bn = getattr(m, f"proj_bn{s}")
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    return m


def _feats(chs, batch, hw4=(4, 2), factors=(8, 4, 2), noncontig=False, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for c, f in zip(chs, tuple(factors) + (1,)):
        h, w = hw4[0] * f, hw4[1] * f
        x = torch.randn(batch, c, w, h, generator=g).transpose(2, 3) if noncontig else torch.randn(batch, c, h, w, generator=g)
        out.append(x.relu() + 0.1)
    return out


def _fast_from_module(m: ScaleAttentionFusion, feats):
    projs = [Projection.from_modules(getattr(m, f"proj_conv{s}"), getattr(m, f"proj_bn{s}")) for s in m.fuse_stages]
    mlp = (AttentionMLP(m.attn_conv1.weight, m.attn_conv1.bias, m.attn_conv2.weight, m.attn_conv2.bias)
           if m.scale_attention else None)
    return scale_fusion([feats[s - 1] for s in m.fuse_stages], feats[3], projs, mlp)


def _compare(chs, batch, train, fuse=(1, 2, 3), attention=True, noncontig=False, factors=(8, 4, 2), device="cpu"):
    base = _module(chs, fuse, attention).to(device)
    m_ref, m_fast = copy.deepcopy(base).train(train), copy.deepcopy(base).train(train)
    feats = [f.to(device) for f in _feats(chs, batch, noncontig=noncontig, factors=factors)]
    a = [f.detach().clone().requires_grad_() for f in feats]
    b = [f.detach().clone().requires_grad_() for f in feats]
    fused_r, w_r = m_ref.reference_forward(*a)
    gap_r = fused_r.mean(dim=(2, 3))
    fused_f, w_f, gap_f = _fast_from_module(m_fast, b)
    errs = {"fused": (fused_r - fused_f).abs().max().item(), "w": (w_r - w_f).abs().max().item(),
            "gap": (gap_r - gap_f).abs().max().item()}
    g = torch.Generator().manual_seed(5)
    r1, r2, r3 = (torch.randn(t.shape, generator=g).to(device) for t in (fused_r, w_r, gap_r))
    lr = (fused_r * r1).sum() + (w_r * r2).sum() + (gap_r * r3).sum()
    lf = (fused_f * r1).sum() + (w_f * r2).sum() + (gap_f * r3).sum()
    used = [i for i in range(4) if i == 3 or (i + 1) in fuse]
    pr = [p for p in m_ref.parameters()]
    pf = [p for p in m_fast.parameters()]
    gr = torch.autograd.grad(lr, [a[i] for i in used] + pr)
    gf = torch.autograd.grad(lf, [b[i] for i in used] + pf)
    errs["grad"] = max((x - y).abs().max().item() for x, y in zip(gr, gf))
    sr, sf = m_ref.state_dict(), m_fast.state_dict()
    errs["state"] = max((sr[k].float() - sf[k].float()).abs().max().item() for k in sr)
    return errs


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("batch,chs,noncontig", [(1, (24, 200, 24, 64), False), (3, (24, 200, 40, 48), True)],
                         ids=["b1_c24_200", "b3_noncontig"])
def test_fast_form_equals_paper_order(train: bool, batch: int, chs, noncontig: bool) -> None:
    """Fused map, weights, GAP, all gradients and BN running stats within 1e-4 (float32)."""
    errs = _compare(chs, batch, train, noncontig=noncontig)
    assert max(errs.values()) <= TOL, errs


@pytest.mark.parametrize("fuse,attention", [((2,), True), ((1, 3), False)])
def test_fast_form_stage_subsets_and_no_attention(fuse, attention) -> None:
    """Other fuse_stages and the ablation without the attention MLP: same 1e-4 tolerance."""
    errs = _compare((24, 40, 32, 48), 2, True, fuse=fuse, attention=attention)
    assert max(errs.values()) <= TOL, errs


def test_odd_factor_resize() -> None:
    """Odd integer factors (3) read a single source row/column: still exact."""
    errs = _compare((16, 24, 20, 32), 2, True, factors=(3, 3, 1))
    assert max(errs.values()) <= TOL, errs


def test_sampled_positions_match_spec() -> None:
    """For an even factor s, bilinear resize reads rows s*i + s/2 - 1 and s*i + s/2, weight 1/2."""
    idx, mat = bilinear_taps(64, 8)
    assert idx == tuple(sorted([8 * i + 3 for i in range(8)] + [8 * i + 4 for i in range(8)]))
    assert all(sorted(v for v in row if v) == [0.5, 0.5] for row in mat)
    assert bilinear_taps(8, 8)[0] == tuple(range(8))


def test_functional_reference_equals_module() -> None:
    """kernels' functional paper-order reference equals the model's module (eval)."""
    m = _module((24, 40, 32, 48)).eval()
    feats = _feats((24, 40, 32, 48), 2)
    fused, w = m.reference_forward(*feats)
    projs = [Projection.from_modules(getattr(m, f"proj_conv{s}"), getattr(m, f"proj_bn{s}")) for s in (1, 2, 3)]
    mlp = AttentionMLP(m.attn_conv1.weight, m.attn_conv1.bias, m.attn_conv2.weight, m.attn_conv2.bias)
    f2, w2, g2 = scale_fusion_reference(feats[:3], feats[3], projs, mlp)
    assert (fused - f2).abs().max() <= 1e-6 and (w - w2).abs().max() <= 1e-6


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_gradcheck_fast_form_float64(train: bool) -> None:
    """gradcheck (float64) of the cheaper form, BN batch statistics from moments in train."""
    m = _module((5, 6, 4, 7)).double().train(train)
    projs = [Projection.from_modules(getattr(m, f"proj_conv{s}"), getattr(m, f"proj_bn{s}")) for s in (1, 2, 3)]
    if train:  # batch statistics without mutating running ones between gradcheck's evaluations
        for p in projs:
            p.running_mean = p.running_var = p.num_batches_tracked = None
    mlp = AttentionMLP(m.attn_conv1.weight, m.attn_conv1.bias, m.attn_conv2.weight, m.attn_conv2.bias)
    feats = [f.double().requires_grad_() for f in _feats((5, 6, 4, 7), 2, hw4=(1, 1), factors=(4, 2, 2))]

    def f(*xs):
        fused, w, gap = scale_fusion_fast(xs[:3], xs[3], projs, mlp)
        return fused, w, gap

    assert torch.autograd.gradcheck(f, tuple(feats), fast_mode=True)


def test_onnx_export_of_fast_form(tmp_path) -> None:
    """The fast form exports with standard ONNX ops and matches the paper order in onnxruntime."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    chs = (8, 12, 16, 24)
    m = _module(chs).eval()

    class Wrap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = m

        def forward(self, f1, f2, f3, f4):
            return _fast_from_module(self.m, [f1, f2, f3, f4])[2]

    feats = _feats(chs, 2)
    path = tmp_path / "fusion.onnx"
    torch.onnx.export(Wrap().eval(), tuple(feats), str(path), dynamo=False, opset_version=17,
                      input_names=["f1", "f2", "f3", "f4"], output_names=["gap"])
    proto = onnx.load(str(path))
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {k: v.numpy() for k, v in zip(["f1", "f2", "f3", "f4"], feats)})[0]
    with torch.no_grad():
        ref = m.reference_forward(*feats)[0].mean(dim=(2, 3))
    assert abs(got - ref.numpy()).max() <= TOL


def test_flop_savings() -> None:
    """The cheaper form does fewer multiply-adds than the paper order (counted by FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    chs = (32, 64, 96, 128)
    m = _module(chs).eval()
    feats = _feats(chs, 1, hw4=(8, 4))
    with FlopCounterMode(display=False) as c1:
        m.reference_forward(*feats)
    with FlopCounterMode(display=False) as c2:
        _fast_from_module(m, feats)
    assert c2.get_total_flops() < 0.5 * c1.get_total_flops()


# ---- Triton weighted sum + GAP (interpreter subprocess) ----

WSUM_CASES = [("b3_d100_4x3_s4_noncontig", 3, 100, (4, 3), 4, True), ("b1_d24_8x4_s2", 1, 24, (8, 4), 2, False)]


def _wsum_errors(case) -> dict:
    _, b, d, hw, s, noncontig = case
    g = torch.Generator().manual_seed(0)
    maps = []
    for i in range(s):
        if noncontig and i == 1:
            maps.append(torch.randn(b, hw[0], hw[1], d, generator=g).permute(0, 3, 1, 2))
        else:
            maps.append(torch.randn(b, d, *hw, generator=g))
    w = torch.rand(b, s, generator=g)
    a = [x.clone().requires_grad_() for x in maps] + [w.clone().requires_grad_()]
    r = [x.clone().requires_grad_() for x in maps] + [w.clone().requires_grad_()]
    f, gp = weighted_scale_sum(a[:-1], a[-1])
    fr, gr = weighted_sum_reference(r[:-1], r[-1])
    u, v = torch.randn(fr.shape, generator=g), torch.randn(gr.shape, generator=g)
    ga = torch.autograd.grad((f * u).sum() + (gp * v).sum(), a)
    gb = torch.autograd.grad((fr * u).sum() + (gr * v).sum(), r)
    return {"fwd": max((f - fr).abs().max().item(), (gp - gr).abs().max().item()),
            "bwd": max((x - y).abs().max().item() for x, y in zip(ga, gb)),
            "triton": bool(interpreting())}


def test_triton_weighted_sum_interpreted() -> None:
    """Triton weighted sum + GAP (forward and backward) vs PyTorch: max abs error <= 1e-5 (float32)."""
    res = run_interpreted(__file__, timeout=600)
    for name, r in res.items():
        assert r["triton"] and r["fwd"] <= 1e-5 and r["bwd"] <= 1e-5, (name, r)


@pytest.mark.slow
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_fast_form_full_resnet50_channels(train: bool) -> None:
    """ResNet50 channels (256/512/1024/2048) at 256x128 input, batch 2: same 1e-4 tolerance."""
    errs = _compare((256, 512, 1024, 2048), 2, train)
    assert max(errs.values()) <= TOL, errs


if __name__ == "__main__":  # run by test_triton_weighted_sum_interpreted under TRITON_INTERPRET=1
    print(json.dumps({c[0]: _wsum_errors(c) for c in WSUM_CASES}))


def test_fusion_module_fast_impl_option() -> None:
    """ScaleAttentionFusion(fusion_impl="fast") shares state_dict keys and outputs (1e-4) with "reference"."""
    from edge_reid.errors import InvalidInputError

    chs = (24, 40, 32, 48)
    ref = _module(chs).train()
    fast = ScaleAttentionFusion(stage_channels=chs, hidden=16, fusion_impl="fast").train()
    fast.load_state_dict(ref.state_dict())
    assert list(fast.state_dict()) == list(ref.state_dict())
    feats = _feats(chs, 3)
    for a, b in zip(ref(*feats), fast(*feats)):
        assert (a - b).abs().max() <= TOL
    with pytest.raises(InvalidInputError):
        ScaleAttentionFusion(stage_channels=chs, fusion_impl="quick")
