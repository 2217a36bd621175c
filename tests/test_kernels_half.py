"""The kernels' half-precision paths under the interpreter, against float64 references.

float16 inputs take the kernels' non-IEEE branches (tensor-core dots on a GPU, float32
accumulation, casts back to the input dtype); this checks their arithmetic on the CPU (the
weighted sum forward and backward, the attention forward and backward, the projection forward).
bfloat16 is checked here only for the weighted sum: Triton's interpreter computes ``tl.dot`` on bfloat16
operands wrongly (a bare 16 x 16 bfloat16 dot kernel is off by ~1e10 under TRITON_INTERPRET=1),
so the bfloat16 attention and projection are covered by the GPU tests (test_kernels_gpu.py).
Tolerance: relative error (max abs error / max magnitude) <= 1e-2 for float16 (10-bit mantissa,
float32 accumulation), 2e-2 for bfloat16.
"""

import json

import torch

from interpreted import run_interpreted

RTOL = {"float16": 1e-2, "bfloat16": 2e-2}


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.detach().double() - ref.detach()).abs().max() / ref.detach().abs().max())


def _attention(dtype: torch.dtype) -> dict:
    """C = 40 with a B x C mask (one-tile, symmetric backward) and C = 100 with a B x N x C mask
    (one-tile, split backward, rows padded to 112): the larger error of the two per output."""
    from kernels import masked_channel_attention, masked_channel_attention_reference

    g = torch.Generator().manual_seed(0)
    out = {"dtype_kept": True, "y": 0.0, "dx": 0.0, "dm": 0.0}
    for b, n, c, mask_shape in ((3, 70, 40, (3, 40)), (2, 50, 100, (2, 50, 100))):
        x = (torch.randn(b, n, c, generator=g) * c ** -0.25).to(dtype)
        m = (torch.rand(mask_shape, generator=g) > 0.4).to(dtype)
        grad = torch.randn(b, n, c, generator=g).to(dtype)
        xa, ma = x.clone().requires_grad_(), m.clone().requires_grad_()
        y = masked_channel_attention(xa, ma)
        dx, dm = torch.autograd.grad(y, (xa, ma), grad)
        xr, mr = x.double().requires_grad_(), m.double().requires_grad_()
        yr = masked_channel_attention_reference(xr, mr)
        dxr, dmr = torch.autograd.grad(yr, (xr, mr), grad.double())
        out["dtype_kept"] &= y.dtype == dx.dtype == dm.dtype == dtype
        for key, a, r in (("y", y, yr), ("dx", dx, dxr), ("dm", dm, dmr)):
            out[key] = max(out[key], _rel(a, r))
    return out


def _weighted_sum(dtype: torch.dtype) -> dict:
    from kernels.scale_fusion.op import weighted_scale_sum, weighted_sum_reference

    g = torch.Generator().manual_seed(1)
    maps = [torch.randn(2, 24, 5, 3, generator=g).to(dtype).requires_grad_() for _ in range(3)]
    w = torch.rand(2, 3, generator=g).to(dtype).requires_grad_()
    fused, gap = weighted_scale_sum(maps, w)
    ref_in = [t.detach().double().requires_grad_() for t in maps + [w]]
    fr, gr = weighted_sum_reference(ref_in[:-1], ref_in[-1])
    u, v = torch.randn(fr.shape, generator=g).double(), torch.randn(gr.shape, generator=g).double()
    grads = torch.autograd.grad((fused * u.to(dtype)).sum() + (gap * v.to(dtype)).sum(), maps + [w])
    ref_grads = torch.autograd.grad((fr * u).sum() + (gr * v).sum(), ref_in)
    return {"dtype_kept": fused.dtype == gap.dtype == dtype and all(t.dtype == dtype for t in grads),
            "fused": _rel(fused, fr), "gap": _rel(gap, gr),
            "grad": max(_rel(a, r) for a, r in zip(grads, ref_grads))}


def _projection(dtype: torch.dtype) -> dict:
    from kernels.scale_fusion.fast import project_sampled_affine
    from kernels.scale_fusion.triton_projection import projection_forward

    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 24, 8, 6, generator=g).to(dtype)
    wt = (torch.randn(40, 24, generator=g) / 5).to(dtype)
    scale, shift = (torch.rand(40, generator=g) + 0.5).to(dtype), torch.randn(40, generator=g).to(dtype)
    out, means = projection_forward(x, wt, scale, shift, (4, 3))
    ref = project_sampled_affine(x.double(), wt.double(), scale.double(), shift.double(), (4, 3))
    return {"dtype_kept": out.dtype == means.dtype == dtype, "out": max(_rel(out, ref), _rel(means, ref.mean(dim=(2, 3))))}


def test_half_precision_kernels_under_the_interpreter() -> None:
    res = run_interpreted(__file__, timeout=600)
    assert set(res) == {"float16/attention", "float16/weighted_sum", "float16/projection", "bfloat16/weighted_sum"}
    for key, r in res.items():
        tol = RTOL[key.split("/")[0]]
        assert r.pop("dtype_kept"), key
        assert all(0.0 <= v <= tol for v in r.values()), (key, r)


if __name__ == "__main__":  # run by the test above in a TRITON_INTERPRET=1 subprocess
    out = {f"float16/{name}": fn(torch.float16)
           for name, fn in (("attention", _attention), ("weighted_sum", _weighted_sum), ("projection", _projection))}
    out["bfloat16/weighted_sum"] = _weighted_sum(torch.bfloat16)
    print(json.dumps(out))
