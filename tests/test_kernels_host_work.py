"""The fast VisNet fusion does no per-call host work after its first call (kernels-gpu.md, reason 10).

On a GPU every tensor built from Python data (``torch.tensor`` of the tap tables) is a blocking
host-to-device copy, and ``.item()`` / ``.tolist()`` wait for the stream. These tests run on the
CPU: after a first eval forward, the second is run with those entry points replaced by functions
that raise, so any tensor built from Python data or any read-back fails the test. The results must
still equal the paper-order module.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterator

import pytest
import torch

from edge_reid.models.visnet_fusion import ScaleAttentionFusion

CHS = (24, 40, 32, 48)


class HostWork(AssertionError):
    pass


@contextlib.contextmanager
def no_host_work() -> Iterator[None]:
    """Within the block, building tensors from Python/NumPy data and reading tensors back raise."""

    def refuse(name):
        def f(*args, **kwargs):
            raise HostWork(f"{name} called in a forward that should do no host work")
        return f

    saved = [(torch, n, getattr(torch, n)) for n in ("tensor", "as_tensor", "from_numpy", "asarray")]
    saved += [(torch.Tensor, n, getattr(torch.Tensor, n)) for n in ("item", "tolist", "numpy")]
    try:
        for owner, name, _ in saved:
            setattr(owner, name, refuse(name))
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def _module(impl: str) -> ScaleAttentionFusion:
    torch.manual_seed(0)
    m = ScaleAttentionFusion(stage_channels=CHS, hidden=16, fusion_impl=impl)
    for s in m.fuse_stages:
        bn = getattr(m, f"proj_bn{s}")
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def _feats(batch: int = 2, hw4=(4, 2), factors=(8, 4, 2, 1)):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(batch, c, hw4[0] * f, hw4[1] * f, generator=g).relu() for c, f in zip(CHS, factors)]


def test_the_guard_catches_host_built_tensors() -> None:
    """The check itself can fail: a plan for sizes not seen yet builds tensors and is refused."""
    from kernels.scale_fusion.fast import sampling_plan

    with no_host_work(), pytest.raises(HostWork):
        sampling_plan((6 * 7, 5 * 11), (7, 11), torch.device("cpu"), torch.float32)


def test_second_eval_forward_does_no_host_work_and_matches_paper_order() -> None:
    fast, ref = _module("fast"), _module("reference")
    feats = _feats()
    with torch.no_grad():
        first = fast.fuse(*feats)
        with no_host_work():
            second = fast.fuse(*feats)
            fused_o, w_o = fast(*feats)
        fused_r, w_r, gap_r = ref.fuse(*feats)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert (second[0] - fused_r).abs().max() <= 1e-4
    assert (second[1] - w_r).abs().max() <= 1e-4
    assert (second[2] - gap_r).abs().max() <= 1e-4  # the kernel's GAP, not recomputed
    assert torch.equal(fused_o, second[0]) and torch.equal(w_o, second[1])


def test_plan_built_in_inference_mode_serves_a_training_step() -> None:
    """The cached tables are normal tensors: a later training step may save them for backward."""
    fast = _module("fast")
    feats = _feats(hw4=(3, 5))  # sizes no other test uses, so the plan is first built here
    with torch.inference_mode():
        fast.fuse(*feats)
    fast.train()
    xs = [f.clone().requires_grad_() for f in feats]
    fused, weights, gap = fast.fuse(*xs)
    (fused.sum() + weights.sum() + gap.sum()).backward()
    assert all(x.grad is not None and torch.isfinite(x.grad).all() for x in xs)


def test_projection_tap_tables_are_built_once_per_device() -> None:
    """The Triton projection's tables (indices, weights) come from a cache on the second call."""
    pytest.importorskip("triton")
    from kernels.scale_fusion.triton_projection import _tables

    first = _tables(48, 6, torch.device("cpu"))
    with no_host_work():
        second = _tables(48, 6, torch.device("cpu"))
    assert second[0] == first[0] == 2
    assert second[1] is first[1] and second[2] is first[2]
    assert second[1].dtype == torch.int32 and second[2].dtype == torch.float32


def test_visnet_features_are_the_fusion_gap() -> None:
    """VisNet's features (the embedding input) are the fusion's GAP, equal for both forms."""
    from edge_reid.models import build_model

    torch.manual_seed(0)
    model = build_model("visnet", num_classes=5, input_size=(64, 32)).eval()
    fast = copy.deepcopy(model)
    fast.fusion.fusion_impl = "fast"
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        ref_out = model.forward_train(x)
        fast_out = fast.forward_train(x)
    assert (ref_out["features"] - ref_out["fused_map"].mean(dim=(2, 3))).abs().max() <= 1e-6
    assert (fast_out["features"] - fast_out["fused_map"].mean(dim=(2, 3))).abs().max() <= 1e-5
    assert (fast_out["features"] - ref_out["features"]).abs().max() <= 1e-4


@pytest.mark.gpu
def test_second_eval_forward_on_the_gpu_does_not_synchronize() -> None:
    """On CUDA (Triton kernels), a second fp16 eval forward runs with torch's sync debug mode set
    to error and with host-built tensors refused."""
    fast = _module("fast").to("cuda", torch.float16)
    feats = [f.to("cuda", torch.float16) for f in _feats(batch=3)]
    with torch.inference_mode():
        first = fast.fuse(*feats)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            with no_host_work():
                second = fast.fuse(*feats)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert all(torch.equal(a, b) for a, b in zip(first, second))
