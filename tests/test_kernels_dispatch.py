"""Masked-attention dispatch (kernels/masked_attention/dispatch.py): every path gives the reference's
result (float32, forward and both gradients), and the rule table sends shapes where it says."""

from __future__ import annotations

import pytest
import torch

from edge_reid.errors import InvalidInputError
from kernels.masked_attention import masked_channel_attention, masked_channel_attention_reference
from kernels.masked_attention.dispatch import ENV, PATHS, RULES, choose_path


def _case(b: int, n: int, c: int, mask_kind: str, dtype=torch.float32, device="cpu"):
    g = torch.Generator().manual_seed(b * 1000 + n + c)
    x = torch.randn(b, n, c, generator=g) * 0.5
    shape = (b, n, c) if mask_kind == "bnc" else (b, c)
    mask = (torch.rand(shape, generator=g) > 0.4).float()
    grad = torch.randn(b, n, c, generator=g)
    return x.to(device, dtype), mask.to(device, dtype), grad.to(device, dtype)


def _run(path, x, mask, grad):
    xr, mr = x.clone().requires_grad_(), mask.clone().requires_grad_()
    y = masked_channel_attention(xr, mr, path=path) if path else masked_channel_attention_reference(xr, mr)
    dx, dm = torch.autograd.grad(y, (xr, mr), grad)
    return y, dx, dm


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("b,n,c,mask_kind", [(2, 37, 24, "bnc"), (1, 50, 72, "bc")],
                         ids=["b2_n37_c24_bnc", "b1_n50_c72_bc"])
def test_every_path_equals_the_reference_float32(path, b, n, c, mask_kind) -> None:
    x, mask, grad = _case(b, n, c, mask_kind)
    ref = _run(None, x, mask, grad)
    got = _run(path, x, mask, grad)
    for name, a, r in zip(("y", "dx", "dm"), got, ref):
        assert a.shape == r.shape, name
        assert (a - r).abs().max() <= 1e-5 * max(1.0, r.abs().max().item()), (path, name)


def test_rule_table() -> None:
    bf16, fp32 = torch.bfloat16, torch.float32
    assert choose_path((64, 2048, 256), bf16, "cuda") == "sdpa"
    assert choose_path((64, 4096, 24), bf16, "cuda") == "sdpa"
    assert choose_path((16, 2048, 2048), bf16, "cuda") == "sdpa"  # C divisible by 8: memory-efficient SDPA
    assert choose_path((2, 100, 300), bf16, "cuda") == "triton"  # ragged C above 256
    assert choose_path((2, 512, 64), fp32, "cuda") == "reference"  # 2 MiB of logits
    assert choose_path((64, 2048, 256), fp32, "cuda") == "sdpa"  # 1 GiB of logits: O(N C) path
    assert choose_path((64, 2048, 200), fp32, "cpu") == "triton"  # CPU: the custom op
    assert all(r.path in PATHS and r.why for r in RULES)


def test_forcing_a_path(monkeypatch) -> None:
    monkeypatch.setenv(ENV, "reference")
    assert choose_path((64, 2048, 256), torch.bfloat16, "cuda") == "reference"
    monkeypatch.setenv(ENV, "cudnn")
    with pytest.raises(InvalidInputError, match="Unknown attention path"):
        choose_path((1, 2, 3), torch.float32, "cpu")
    monkeypatch.delenv(ENV)
    x, mask, _ = _case(1, 8, 8, "bc")
    with pytest.raises(InvalidInputError, match="Unknown attention path"):
        masked_channel_attention(x, mask, path="flash")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_every_path_on_the_gpu_matches_float64(dtype) -> None:
    x, mask, grad = _case(2, 300, 64, "bnc", dtype, "cuda")
    ref = _run(None, x.double(), mask.double(), grad.double())
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    for path in PATHS:
        got = _run(path, x, mask, grad)
        for name, a, r in zip(("y", "dx", "dm"), got, ref):
            assert ((a.double() - r).norm() / r.norm()).item() <= tol, (path, name)
