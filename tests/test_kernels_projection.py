"""Triton sampled-projection kernel (gather + 1x1 conv + folded BN + ReLU + bilinear blend).

The kernel runs under TRITON_INTERPRET=1 in a subprocess (this file run as a script) on tiny odd
shapes: batch 1 and 3, C_in 24, C_out 40, factors 2 and 4 (and 3, odd, and unequal H/W factors),
one non-contiguous input. The op also returns each map's per-channel mean, computed in the kernel's
epilogue (per position block, several blocks at the 16-wide interpreter tile); it and its gradient
are checked against the mean of the PyTorch form. Compared with fast.py's PyTorch projection (project_sampled_affine) and
with the paper order (conv -> BN -> ReLU -> F.interpolate): forward max abs error <= 1e-4 in
float32; gradients of the custom op (PyTorch backward) against fast.py's autograd, same tolerance.
"""

import json

import torch
import torch.nn.functional as F

from kernels._triton_utils import interpreting
from interpreted import run_interpreted
from kernels.scale_fusion.fast import project_sampled_affine
from kernels.scale_fusion.op import _proj_op, sampled_projection
from kernels.scale_fusion.reference import Projection, project_reference

TOL = 1e-4

# name, batch, C_in, C_out, target (h4, w4), factors (fh, fw), non-contiguous
CASES = [("b1_f2", 1, 24, 40, (3, 2), (2, 2), False),
         ("b3_f4_noncontig", 3, 24, 40, (2, 3), (4, 4), True),
         ("b1_f3x2", 1, 24, 40, (2, 2), (3, 2), False),
         ("b2_f2_20pos", 2, 24, 40, (5, 4), (2, 2), False)]  # 20 positions: two 16-wide blocks of means


def _case_tensors(case):
    _, b, cin, cout, hw4, fac, noncontig = case
    g = torch.Generator().manual_seed(7)
    h, w = hw4[0] * fac[0], hw4[1] * fac[1]
    if noncontig:
        x = torch.randn(b, w, cin, h, generator=g).permute(0, 2, 3, 1)  # B x C x H x W, odd strides
        assert not x.is_contiguous()
    else:
        x = torch.randn(b, cin, h, w, generator=g)
    weight = torch.randn(cout, cin, generator=g) / cin ** 0.5
    scale = torch.rand(cout, generator=g) + 0.5
    shift = torch.randn(cout, generator=g) * 0.3  # some channels mostly negative: ReLU matters
    return x, weight, scale, shift, hw4


def _errors(case) -> dict:
    x, weight, scale, shift, hw4 = _case_tensors(case)
    a = [t.clone().requires_grad_() for t in (x, weight, scale, shift)]
    r = [t.clone().requires_grad_() for t in (x, weight, scale, shift)]
    out, mean = _proj_op(*a, hw4[0], hw4[1])
    ref = project_sampled_affine(*r, hw4)
    ref_mean = ref.mean(dim=(2, 3))
    with torch.no_grad():  # paper order: full-resolution projection, then resize
        full = F.relu(F.conv2d(x, weight[:, :, None, None]) * scale[:, None, None] + shift[:, None, None])
        paper = F.interpolate(full, size=hw4, mode="bilinear", align_corners=False)
    u = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3))
    v = torch.randn(ref_mean.shape, generator=torch.Generator().manual_seed(4))
    ga = torch.autograd.grad((out * u).sum() + (mean * v).sum(), a)  # the mean output carries gradient too
    gr = torch.autograd.grad((ref * u).sum() + (ref_mean * v).sum(), r)
    return {"fwd": (out - ref).abs().max().item(), "paper": (out - paper).abs().max().item(),
            "mean": (mean - ref_mean).abs().max().item(), "mean_shape": list(mean.shape),
            "bwd": max((p - q).abs().max().item() for p, q in zip(ga, gr)),
            "shape": list(out.shape), "contiguous": out.is_contiguous(),
            "active": (ref > 0).float().mean().item(), "triton": bool(interpreting()),
            "direct": _direct_error(x, weight, scale, shift, hw4, ref.detach())}


def _direct_error(x, weight, scale, shift, hw4, ref) -> float:
    """The Triton entry point called directly (not through the op's dispatch); -1 without Triton."""
    if not interpreting():
        return -1.0
    from kernels.scale_fusion.triton_projection import projection_forward

    return (projection_forward(x, weight, scale, shift, hw4)[0] - ref).abs().max().item()


def _module_errors() -> dict:
    """sampled_projection on an eval-mode Projection (the dispatch used by scale_fusion)."""
    x, weight, _, _, hw4 = _case_tensors(CASES[1])
    g = torch.Generator().manual_seed(11)
    d = weight.shape[0]
    p = Projection(weight[:, :, None, None].clone(), torch.randn(d, generator=g), torch.randn(d, generator=g),
                   torch.randn(d, generator=g), torch.rand(d, generator=g) + 0.5, torch.zeros((), dtype=torch.long))
    with torch.no_grad():
        got, mean = sampled_projection(p, x, hw4)
        ref = project_reference(p, x, hw4)
    return {"fwd": max((got - ref).abs().max().item(), (mean - ref.mean(dim=(2, 3))).abs().max().item()), "paper": 0.0, "bwd": 0.0, "shape": list(got.shape),
            "contiguous": True, "active": (ref > 0).float().mean().item(), "triton": bool(interpreting())}


def test_triton_sampled_projection_interpreted() -> None:
    """Triton projection (forward) and its PyTorch backward vs fast.py: max abs error <= 1e-4 (float32)."""
    res = run_interpreted(__file__, timeout=600)
    assert set(res) == {c[0] for c in CASES} | {"module_eval"}
    for case in CASES:
        r = res[case[0]]
        assert r["triton"], (case[0], r)
        assert r["shape"] == [case[1], case[3], *case[4]] and r["contiguous"], (case[0], r)
        assert 0.05 < r["active"] < 0.95, (case[0], r)  # both ReLU branches exercised
        assert r["fwd"] <= TOL and r["paper"] <= TOL and r["bwd"] <= TOL, (case[0], r)
        assert r["mean"] <= TOL and r["mean_shape"] == [case[1], case[3]], (case[0], r)  # the epilogue's means
        assert 0.0 <= r["direct"] <= TOL, (case[0], r)
    assert res["module_eval"]["triton"] and res["module_eval"]["fwd"] <= TOL, res["module_eval"]


def test_projection_op_cpu_default_matches_fast_form() -> None:
    """Without the interpreter the custom op is the PyTorch form: same values and gradients (1e-5)."""
    if interpreting():  # this process was started with TRITON_INTERPRET=1: covered by the test above
        return
    for case in CASES:
        r = _errors(case)
        assert not r["triton"] and r["fwd"] <= 1e-5 and r["bwd"] <= 1e-5 and r["paper"] <= TOL, (case[0], r)
        assert r["mean"] <= 1e-6, (case[0], r)


if __name__ == "__main__":  # run by test_triton_sampled_projection_interpreted under TRITON_INTERPRET=1
    out = {c[0]: _errors(c) for c in CASES}
    out["module_eval"] = _module_errors()
    print(json.dumps(out))
