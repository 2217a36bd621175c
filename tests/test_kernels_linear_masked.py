"""DCS linear attention on tokens + mask: Triton kernels (interpreter, float32) vs the reference.

The interpreter check runs this file as a script under TRITON_INTERPRET=1 (tests/interpreted.py):
odd shapes (N and C not multiples of the 16-wide tiles, odd H x W maps, key strides 1-3), a
channel that the mask drops everywhere and one it keeps everywhere, non-contiguous X (the
B x C x H x W map seen as tokens), a stride-0 (pooled) mask, and the Gram reduction split over
token chunks. Forward and both gradients (X, M) are compared with the float32 reference and with
float64 autograd of the reference.
"""

from __future__ import annotations

import json

import pytest
import torch

from edge_reid.errors import InvalidInputError
from interpreted import run_interpreted
from kernels._triton_utils import interpreting
from kernels.linear_attention import masked_linear_attention, masked_linear_attention_reference
from kernels.linear_attention.masked import ENV, choose_path
from kernels.linear_attention.reference import masked_linear_attention_backward_reference

# name, batch, C, (H, W), key stride, split of the Gram reduction (None: the wrapper's), pooled mask
CASES = [("b2_c20_5x7_s2", 2, 20, (5, 7), 2, None, False),
         ("b1_c33_6x3_s3_split2", 1, 33, (6, 3), 3, 2, False),
         ("b3_c17_4x4_s1_split3", 3, 17, (4, 4), 1, 3, False),
         ("b2_c24_9x5_s2_pooled", 2, 24, (9, 5), 2, None, True)]
TOL = 2e-5


def _inputs(case):
    _, b, c, (h, w), _, _, pooled = case
    g = torch.Generator().manual_seed(5)
    x = torch.randn(b, c, h * w, generator=g).transpose(1, 2)  # tokens of a B x C x H x W map: strided
    if pooled:
        mask = (torch.rand(b, 1, c, generator=g) > 0.5).float().expand(b, h * w, c)
    else:
        mask = (torch.rand(b, h * w, c, generator=g) > 0.5).float()
    mask = mask.clone() if not pooled else mask
    if not pooled:
        mask[:, :, 0] = 0.0  # a channel never selected
        mask[:, :, 1] = 1.0  # a channel always selected
    return x, mask, torch.randn(b, h * w, c, generator=g)


def _errors(case) -> dict:
    name, _, _, size, stride, split, _ = case
    x, mask, grad = _inputs(case)
    x64 = x.double().requires_grad_()
    m64 = mask.double().requires_grad_()
    y64 = masked_linear_attention_reference(x64, m64, size, stride)
    dx64, dm64 = torch.autograd.grad(y64, (x64, m64), grad.double())
    xa, ma = x.clone().requires_grad_(), mask.clone().requires_grad_()
    y = masked_linear_attention(xa, ma, size, stride, path="triton")
    dx, dm = torch.autograd.grad(y, (xa, ma), grad)
    y32 = masked_linear_attention_reference(x, mask, size, stride)
    out = {"fwd64": (y.double() - y64).abs().max().item(), "fwd32": (y - y32).abs().max().item(),
           "dx64": (dx.double() - dx64).abs().max().item(), "dm64": (dm.double() - dm64).abs().max().item(),
           "scale": y64.abs().max().item(), "triton": interpreting()}
    out["direct"] = 0.0
    if interpreting() and split is not None:  # the wrappers called directly, the Gram reduction split
        from kernels.linear_attention.triton_linear import mla_backward, mla_forward

        ns = -(-size[0] // stride) * -(-size[1] // stride)
        direct = mla_forward(x, mask, size, stride, 1.0 / ns, split)
        ddx, ddm = mla_backward(grad, x, mask, size, stride, 1.0 / ns, split)
        out["direct"] = max((direct.double() - y64).abs().max().item(), (ddx.double() - dx64).abs().max().item(),
                            (ddm.double() - dm64).abs().max().item())
    return out


def test_triton_linear_attention_interpreted() -> None:
    """Forward, dX and dM of the kernels within 2e-5 of float64 autograd of the reference."""
    pytest.importorskip("triton")
    res = run_interpreted(__file__, timeout=600)
    assert set(res) == {c[0] for c in CASES}
    for case in CASES:
        r = res[case[0]]
        assert r["triton"] and r["scale"] > 0.1, (case[0], r)
        for key in ("fwd64", "fwd32", "dx64", "dm64", "direct"):
            assert r[key] <= TOL, (case[0], key, r)


def _gpu_config_errors() -> dict:
    """Under the interpreter: each pair of GPU configurations (Gram, row kernels) of each channel tile
    class run alone (the autotuner given that one config) on a shape of that class, vs float64."""
    import triton

    from kernels.linear_attention import triton_linear as tli

    def as_config(d: dict):
        meta = {k: v for k, v in d.items() if k not in ("num_warps", "num_stages")}
        return triton.Config(meta, num_warps=d["num_warps"], num_stages=d["num_stages"])

    out = {}
    saved = {k: getattr(tli, k).configs for k in ("_la_gram", "_la_apply", "_la_key_grad")}
    try:
        for c in (24, 40, 100):  # channel tile classes 32, 64, 128
            grams = [g for g in tli._GRAM_GPU if tli.config_fits(g, c)]
            rows = [r for r in tli._ROWS_GPU if tli.config_fits(r, c)]
            for i, (g, r) in enumerate(zip(grams, rows)):
                tli._la_gram.configs = [as_config(g)]
                tli._la_apply.configs = tli._la_key_grad.configs = [as_config(r)]
                case = (f"c{c}_pair{i}", 1, c, (9, 7), 2, 2, False)
                out[case[0]] = _errors(case)
    finally:
        for k, v in saved.items():
            getattr(tli, k).configs = v
    return out


def test_every_gpu_config_is_exact_under_the_interpreter() -> None:
    """The GPU tile sizes (not just the interpreter's 16-wide ones) give the same numbers (2e-5)."""
    pytest.importorskip("triton")
    res = run_interpreted(__file__, "configs", timeout=600)
    assert len(res) == 6
    for name, r in res.items():
        assert r["triton"], name
        for key in ("fwd64", "fwd32", "dx64", "dm64", "direct"):
            assert r[key] <= TOL, (name, key, r)


@pytest.mark.parametrize("case", [("b2_c5_3x4_s2", 2, 5, (3, 4), 2, None, False),
                                  ("b1_c6_5x3_s3_pooled", 1, 6, (5, 3), 3, None, True)], ids=lambda c: c[0])
def test_op_gradients_pass_gradcheck_in_float64(case) -> None:
    """The custom op (reference inside on the CPU) and its written-out backward, float64 gradcheck."""
    x, mask, _ = _inputs(case)
    size, stride = case[3], case[4]
    xa = x.double().requires_grad_()
    ma = (mask.double() * 0.5 + 0.25).requires_grad_()  # a soft mask: gradients in both inputs
    assert torch.autograd.gradcheck(lambda a, m: masked_linear_attention(a, m, size, stride, path="triton"), (xa, ma))


def test_written_out_backward_equals_autograd_in_both_orders() -> None:
    x, mask, grad = (t.double() for t in _inputs(CASES[0]))
    size, stride = CASES[0][3], CASES[0][4]
    for order in ("kv", "qk"):
        xa, ma = x.clone().requires_grad_(), mask.clone().requires_grad_()
        ref = torch.autograd.grad(masked_linear_attention_reference(xa, ma, size, stride, order=order), (xa, ma), grad)
        mine = masked_linear_attention_backward_reference(grad, x, mask, size, stride, 1.0 / 12, order)
        for a, b in zip(ref, mine):
            assert torch.allclose(a, b, atol=1e-10)


def test_op_traces_as_one_node_and_counts_the_chosen_order() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from kernels.linear_attention import linear_attention_flops

    x, mask, _ = _inputs(CASES[0])  # 5 x 7 map, stride 2: 12 keys, C 20: the op counts its resolved order
    with FlopCounterMode(display=False) as counter:
        masked_linear_attention(x, mask, (5, 7), 2, path="triton")
    assert counter.get_total_flops() == linear_attention_flops(2, 35, 12, 20)
    traced = torch.fx.experimental.proxy_tensor.make_fx(
        lambda a, m: masked_linear_attention(a, m, (5, 7), 2, path="triton"), tracing_mode="fake")(x, mask)
    assert sum(1 for nd in traced.graph.nodes if "masked_linear_attention" in str(nd.target)) == 1


def test_dispatch_rules_and_override(monkeypatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert choose_path(2048, 512, 24, "cuda") == "triton"  # Q (K^T V) cheaper: the kernels
    assert choose_path(32, 8, 320, "cuda") == "reference"  # (Q K^T) V cheaper: cuBLAS
    assert choose_path(32, 8, 320, "cpu") == "triton"  # CPU: the op (reference inside it)
    monkeypatch.setenv(ENV, "reference")
    assert choose_path(2048, 512, 24, "cuda") == "reference"
    monkeypatch.setenv(ENV, "fast")
    with pytest.raises(InvalidInputError, match="linear attention path"):
        choose_path(2048, 512, 24, "cuda")


def test_both_paths_agree_and_bad_inputs_are_one_sentence() -> None:
    x, mask, _ = _inputs(CASES[0])
    size, stride = CASES[0][3], CASES[0][4]
    a = masked_linear_attention(x, mask, size, stride, path="triton")
    b = masked_linear_attention(x, mask, size, stride, path="reference")
    assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(InvalidInputError, match="size H x W"):
        masked_linear_attention(x, mask, (5, 6), stride)
    with pytest.raises(InvalidInputError, match="one shape"):
        masked_linear_attention(x, mask[:, :, :3], size, stride)


@pytest.mark.skipif(interpreting(), reason="under TRITON_INTERPRET=1 the kernels carry one config")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_autotuning_keeps_two_configs_of_the_channel_tile_and_caches_on_disk(dtype) -> None:
    pytest.importorskip("triton")
    from kernels.autotune import MAX_TRIED, has_disk_cache
    from kernels.launches import autotuned_kernels
    from kernels.linear_attention import triton_linear as tli

    tuners = autotuned_kernels(tli)
    assert set(tuners) == {"_la_gram", "_la_apply", "_la_key_grad"}
    for name, tuner in tuners.items():
        assert tuner.early_config_prune is not None and tuner.cache_results == has_disk_cache(), name
        assert set(tuner.keys) == {"R_BUCKET", "C_BUCKET", "B_BUCKET"}, name  # bucketed, never raw N or C
        assert all(c.pre_hook is None for c in tuner.configs), name
    for c in (24, 32, 64, 200, 256):  # the DCS stages' channel counts and a ragged one
        x = torch.empty(64, 2048, c, dtype=dtype)
        for tuner, args in ((tuners["_la_apply"], {"X": x, "R": 2048, "C": c}),
                            (tuners["_la_gram"], {"X": x, "C": c, "PROGRAMS_B": 64})):
            kept = tuner.early_config_prune(tuner.configs, args)
            assert len(kept) == MAX_TRIED == 2, (c, kept)
            assert all(tli.config_fits(k.kwargs, c) for k in kept), (c, kept)
            assert len({(k.kwargs["BLOCK_I"], k.kwargs["BLOCK_J"]) for k in kept}) == 1, (c, kept)


def test_bench_shapes_come_from_the_models() -> None:
    """The benchmark's linear-form shapes are every linear DCS block of the model (stride 4 .. 32 maps)."""
    from edge_reid.bench.linear_attention_rows import MODELS, dcs_attention_shapes
    from edge_reid.models import build_model
    from edge_reid.models.dcs_attention import DCSAttention

    models = MODELS[:1]  # DCS-MobileNetV2 (building DCS-ResNet50 twice on the CPU would take long)
    shapes = dcs_attention_shapes((256, 128), models)
    for label, name in models:
        blocks = [m for m in build_model(name, num_classes=2).modules() if isinstance(m, DCSAttention)]
        mine = [s for s in shapes if s[0] == label]
        assert [s[1] for s in mine] == [m.channels for m in blocks] and len(mine) >= 2
        assert all(256 % h == 0 and h // w == 2 and 4 <= 256 // h <= 32 for _, _, h, w, _ in mine)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_kernels_on_the_gpu_match_float64(dtype) -> None:
    """DCS-ResNet50's first block (C 256 at 64 x 32, batch 4) and DCS-MobileNetV2's first (C 24):
    forward and gradients vs float64 on the device (relative to the largest magnitude)."""
    tol = {torch.float32: 1e-3, torch.float16: 1e-2, torch.bfloat16: 4e-2}[dtype]
    g = torch.Generator(device="cuda").manual_seed(0)
    for c in (256, 24):
        x = torch.randn(4, c, 2048, device="cuda", generator=g).transpose(1, 2)
        mask = (torch.rand(4, 2048, c, device="cuda", generator=g) > 0.5).float()
        grad = torch.randn(4, 2048, c, device="cuda", generator=g)
        x64, m64 = x.double().requires_grad_(), mask.double().requires_grad_()
        ref = masked_linear_attention_reference(x64, m64, (64, 32), 2)
        refs = [ref, *torch.autograd.grad(ref, (x64, m64), grad.double())]
        xa, ma = x.to(dtype).requires_grad_(), mask.to(dtype).requires_grad_()
        y = masked_linear_attention(xa, ma, (64, 32), 2, path="triton")
        got = [y, *torch.autograd.grad(y, (xa, ma), grad.to(dtype))]
        for k, (a, r) in enumerate(zip(got, refs)):
            rel = float((a.double() - r).abs().max() / r.abs().max())
            assert a.dtype == dtype and rel <= tol * (1 if k == 0 else 2), (c, k, rel)


if __name__ == "__main__":  # run by the interpreter tests above under TRITON_INTERPRET=1
    import sys

    print(json.dumps(_gpu_config_errors() if sys.argv[1:] == ["configs"] else {c[0]: _errors(c) for c in CASES}))
