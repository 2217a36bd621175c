"""The Triton kernels on a real GPU: float32/float16/bfloat16 accuracy, O(N*C) memory, torch.compile.

Skipped with the reason where no CUDA GPU is visible (conftest). References run in float64 on the
same device with TF32 off, so the errors measured are the kernels' own. Relative error = max abs
error / max magnitude of the reference. Tolerances: float32 1e-3 (spec), float16 1e-2, bfloat16 4e-2
(8 mantissa bits) for outputs; gradients twice those (they go through two more matmuls).
"""

import pytest
import torch

from kernels import masked_channel_attention, masked_channel_attention_reference
from test_kernels_scale_fusion import TOL, _compare

pytestmark = pytest.mark.gpu

RTOL = {torch.float32: 1e-3, torch.float16: 1e-2, torch.bfloat16: 4e-2}


@pytest.fixture(autouse=True)
def _no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-12))


def _attention_case(b: int, n: int, c: int, mask_kind: str, transposed: bool, dtype: torch.dtype):
    g = torch.Generator(device="cuda").manual_seed(0)
    x = (torch.randn(b, c, n, device="cuda", generator=g).transpose(1, 2) if transposed
         else torch.randn(b, n, c, device="cuda", generator=g)) * c ** -0.25  # O(1) logits, see test_kernels_masked_attention
    mask = (torch.rand((b, c) if mask_kind == "bc" else (b, n, c), device="cuda", generator=g) > 0.4).float()
    grad = torch.randn(b, n, c, device="cuda", generator=g)
    return x.to(dtype), mask.to(dtype), grad.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("b,n,c,mask_kind,transposed", [(3, 333, 200, "bnc", True), (1, 1000, 24, "bc", False),
                                                        (2, 2048, 256, "bc", False)],
                         ids=["b3_n333_c200_bnc_T", "b1_n1000_c24_bc", "b2_n2048_c256_bc"])
def test_masked_attention_matches_float64_reference(b, n, c, mask_kind, transposed, dtype) -> None:
    x, mask, grad = _attention_case(b, n, c, mask_kind, transposed, dtype)
    xt, mt = x.detach().clone().requires_grad_(), mask.detach().clone().requires_grad_()
    y = masked_channel_attention(xt, mt, path="triton")
    dx, dm = torch.autograd.grad(y, (xt, mt), grad)
    xr, mr = x.double().requires_grad_(), mask.double().requires_grad_()
    yr = masked_channel_attention_reference(xr, mr)
    dxr, dmr = torch.autograd.grad(yr, (xr, mr), grad.double())
    assert y.dtype == dtype and dx.dtype == dtype and dm.shape == mask.shape
    assert _rel(y, yr) <= RTOL[dtype]
    assert _rel(dx, dxr) <= 2 * RTOL[dtype]
    assert _rel(dm, dmr) <= 2 * RTOL[dtype]


def test_masked_attention_memory_is_linear_in_tokens() -> None:
    """N = 8192: forward + backward must not hold an N x N matrix (256 MiB in float32)."""
    b, n, c = 1, 8192, 64
    x, mask, grad = _attention_case(b, n, c, "bnc", False, torch.float32)
    x.requires_grad_()
    mask.requires_grad_()
    torch.autograd.grad(masked_channel_attention(x, mask, path="triton"), (x, mask), grad)  # autotune first (its own buffers)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    y = masked_channel_attention(x, mask, path="triton")
    torch.autograd.grad(y, (x, mask), grad)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before
    n_by_c = b * n * c * 4
    assert extra < 16 * n_by_c, f"peak extra memory {extra / 2**20:.1f} MiB for N*C = {n_by_c / 2**20:.1f} MiB"
    assert extra < (n * n * 4) // 4


def test_masked_attention_under_torch_compile_matches_eager() -> None:
    x, mask, grad = _attention_case(2, 300, 96, "bnc", False, torch.float32)
    def triton_path(x, mask):
        return masked_channel_attention(x, mask, path="triton")

    compiled = torch.compile(triton_path, fullgraph=True)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = triton_path(xa, mask), compiled(xb, mask)
    (ga,), (gb,) = torch.autograd.grad(ya, xa, grad), torch.autograd.grad(yb, xb, grad)
    assert torch.allclose(ya, yb, atol=1e-5, rtol=0) and torch.allclose(ga, gb, atol=1e-5, rtol=0)


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("batch,chs,noncontig", [(3, (24, 200, 40, 48), True), (8, (256, 512, 1024, 2048), False)],
                         ids=["b3_noncontig", "b8_resnet50_channels"])
def test_fast_fusion_on_gpu_equals_paper_order(train: bool, batch: int, chs, noncontig: bool) -> None:
    """Triton projection (eval) and weighted sum + GAP against the paper-order module, float32."""
    errs = _compare(chs, batch, train, noncontig=noncontig, device="cuda")
    assert max(errs.values()) <= TOL, errs


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_fusion_kernels_in_half_precision(dtype) -> None:
    """Sampled projection and weighted sum + GAP (forward and backward) at VisNet's sizes for a
    256x128 input (stage 3: 1024 channels at 16x8, fused maps 2048 x 8 x 4) against float64."""
    from kernels.scale_fusion.fast import project_sampled_affine
    from kernels.scale_fusion.op import weighted_scale_sum, weighted_sum_reference
    from kernels.scale_fusion.triton_projection import projection_forward

    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(4, 1024, 16, 8, device="cuda", generator=g).to(dtype)
    wt = (torch.randn(2048, 1024, device="cuda", generator=g) / 32).to(dtype)
    scale = (torch.rand(2048, device="cuda", generator=g) + 0.5).to(dtype)
    shift = torch.randn(2048, device="cuda", generator=g).to(dtype)
    out, means = projection_forward(x, wt, scale, shift, (8, 4))
    ref = project_sampled_affine(x.double(), wt.double(), scale.double(), shift.double(), (8, 4))
    assert out.dtype == dtype and _rel(out, ref) <= RTOL[dtype]
    assert means.dtype == dtype and _rel(means, ref.mean(dim=(2, 3))) <= RTOL[dtype]  # the epilogue's means
    maps = [torch.randn(4, 2048, 8, 4, device="cuda", generator=g).to(dtype).requires_grad_() for _ in range(4)]
    w = torch.rand(4, 4, device="cuda", generator=g).to(dtype).requires_grad_()
    fused, gap = weighted_scale_sum(maps, w)
    ref_in = [p.detach().double().requires_grad_() for p in maps + [w]]
    fr, gr = weighted_sum_reference(ref_in[:-1], ref_in[-1])
    assert fused.dtype == dtype and _rel(fused, fr) <= RTOL[dtype] and _rel(gap, gr) <= RTOL[dtype]
    u, v = torch.randn_like(fr), torch.randn_like(gr)
    grads = torch.autograd.grad((fused * u.to(dtype)).sum() + (gap * v.to(dtype)).sum(), maps + [w])
    ref_grads = torch.autograd.grad((fr * u).sum() + (gr * v).sum(), ref_in)
    assert all(a.dtype == dtype and _rel(a, r) <= 2 * RTOL[dtype] for a, r in zip(grads, ref_grads))
