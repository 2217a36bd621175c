"""Linear attention (DCS-Attention's ``linear`` form): both orders, the custom op, gradients, ONNX."""

from __future__ import annotations

import pytest
import torch

from edge_reid.errors import InvalidInputError
from kernels import linear_attention, linear_attention_reference
from kernels.linear_attention import choose_order, linear_attention_backward_reference, linear_attention_flops


def _qkv(b: int, n: int, m: int, c: int, dtype=torch.float64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, s, c, generator=g, dtype=dtype) for s in (n, m, m)]


@pytest.mark.parametrize("b,n,m,c", [(1, 35, 12, 20), (3, 9, 3, 50)])
def test_both_orders_agree_with_the_formula(b: int, n: int, m: int, c: int) -> None:
    q, k, v = _qkv(b, n, m, c)
    expected = torch.einsum("bnc,bmc,bmd->bnd", q, k, v) / m  # sum_m (q_n . k_m) v_m / M
    for order in ("kv", "qk", "auto"):
        assert torch.allclose(linear_attention_reference(q, k, v, order=order), expected, atol=1e-10)
        assert torch.allclose(linear_attention(q, k, v, order=order), expected, atol=1e-10)
    assert torch.allclose(linear_attention(q, k, v, scale=0.5), expected * m * 0.5, atol=1e-10)


def test_auto_order_picks_the_cheaper_product() -> None:
    assert choose_order(2048, 512, 24) == "kv"  # (N + M) C^2 = 1.5 M  <  2 N M C = 50 M
    assert choose_order(32, 8, 320) == "qk"  # 4.1 M  >  0.16 M
    assert linear_attention_flops(2, 2048, 512, 24) == 2 * 2 * (2048 + 512) * 24 * 24
    assert linear_attention_flops(1, 32, 8, 320) == 2 * 2 * 32 * 8 * 320


@pytest.mark.parametrize("order", ["kv", "qk"])
def test_gradients_match_autograd_of_the_reference(order: str) -> None:
    q, k, v = (t.requires_grad_() for t in _qkv(3, 7, 4, 5))
    assert torch.autograd.gradcheck(lambda a, b_, c: linear_attention(a, b_, c, order=order), (q, k, v))
    grad = torch.randn(3, 7, 5, dtype=torch.float64)
    ref = torch.autograd.grad(linear_attention_reference(q, k, v, order=order), (q, k, v), grad)
    mine = linear_attention_backward_reference(grad, q.detach(), k.detach(), v.detach(), 1 / 4, order)
    for a, b_ in zip(ref, mine):
        assert torch.allclose(a, b_, atol=1e-10)


def test_custom_op_traces_as_one_node_and_counts_flops() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    q, k, v = _qkv(2, 64, 16, 8, dtype=torch.float32)
    with FlopCounterMode(display=False) as counter:
        linear_attention(q, k, v)
    assert counter.get_total_flops() == linear_attention_flops(2, 64, 16, 8)
    traced = torch.fx.experimental.proxy_tensor.make_fx(lambda a, b_, c: linear_attention(a, b_, c), tracing_mode="fake")(q, k, v)
    assert sum(1 for nd in traced.graph.nodes if "linear_attention" in str(nd.target)) == 1


def test_bad_shapes_or_order_are_clear_errors() -> None:
    q, k, v = _qkv(1, 5, 3, 4)
    with pytest.raises(InvalidInputError, match="linear_attention"):
        linear_attention(q, k[:, :, :3], v)
    with pytest.raises(InvalidInputError, match="order"):
        linear_attention(q, k, v, order="fast")
