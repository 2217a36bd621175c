"""Masked-attention dispatch (kernels/masked_attention/dispatch.py, dispatch_timing.py): every path
gives the reference's result (float32, forward and both gradients); the rule table sends shapes where
it says; the timed choice keeps the fastest path by real timings (CPU-runnable paths here) and its
disk cache answers later calls and processes without timing again."""

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


# torch.compile on the CPU (inductor's C++ build) takes 15-50 s on the shared 2-core machine: slow
CASES = [pytest.param(path, b, n, c, kind, id=f"{path}-b{b}_n{n}_c{c}_{kind}",
                      marks=[pytest.mark.slow] if path == "compiled" else [])
         for b, n, c, kind in [(2, 37, 24, "bnc"), (1, 50, 72, "bc")] for path in PATHS]


@pytest.mark.parametrize("path,b,n,c,mask_kind", CASES)
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
    for path in [p for p in PATHS if p != "compiled"]:  # the compiled reference is the reference (CPU test above)
        got = _run(path, x, mask, grad)
        for name, a, r in zip(("y", "dx", "dm"), got, ref):
            assert ((a.double() - r).norm() / r.norm()).item() <= tol, (path, name)


# --- the timed choice and its disk cache (real CPU timings of the CPU-runnable paths) ---

TIMED = ["reference", "sdpa", "triton"]  # "triton" on the CPU: the custom op (reference math inside)


def _runner(calls: list):
    """The op's own path runner, counting the calls it makes (a spy on the real paths)."""
    from kernels.masked_attention.op import run_path

    def run(path, x, mask):
        calls.append(path)
        return run_path(path, x, mask, x.shape[-1] ** -0.5)

    return run


def test_timed_choice_keeps_the_fastest_and_caches_it_on_disk(tmp_path) -> None:
    import json

    from kernels.masked_attention.dispatch_timing import DecisionCache, shape_class, timed_choice, versions_key

    x, mask, _ = _case(2, 64, 24, "bc")
    calls: list = []
    cache_file = tmp_path / "dispatch.json"
    chosen = timed_choice(_runner(calls), TIMED, x, mask, True, DecisionCache(cache_file))
    assert set(calls) == set(TIMED) and len(calls) == 4 * len(TIMED)  # warm-up + 3 timed calls each
    data = json.loads(cache_file.read_text())
    section, key = versions_key(x.device), shape_class(x, mask, True)
    assert section.startswith("cpu | torch ") and "triton" in section and key == "B2xN64xC24 float32 bc fwd+bwd"
    entry = data[section][key]
    assert set(entry["ms"]) == set(TIMED) and all(v > 0 for v in entry["ms"].values())
    assert chosen == entry["path"] == min(entry["ms"], key=entry["ms"].get)
    # a later process (a fresh cache object on the same file) at the same shape class: no timing
    again: list = []
    x2, mask2, _ = _case(2, 50, 24, "bc")  # N = 50 is in N = 64's bucket
    assert timed_choice(_runner(again), TIMED, x2, mask2, True, DecisionCache(cache_file)) == chosen
    assert again == []
    # forward-only calls are another class: timed separately, the first entry kept
    assert timed_choice(_runner(again), TIMED, x2, mask2, False, DecisionCache(cache_file)) in TIMED
    assert len(again) == 4 * len(TIMED)
    assert set(json.loads(cache_file.read_text())[section]) == {key, "B2xN64xC24 float32 bc fwd"}


def test_cached_choice_is_kept_only_for_the_same_versions(tmp_path) -> None:
    """An entry written under another torch/triton/device key does not answer; an entry under this
    one does, whatever it says (the file is the authority once written)."""
    from kernels.masked_attention.dispatch_timing import DecisionCache, shape_class, timed_choice, versions_key

    x, mask, _ = _case(1, 32, 16, "bnc")
    key = shape_class(x, mask, False)
    cache = DecisionCache(tmp_path / "d.json")
    cache.put("cpu | torch 0.0 | triton 0.0", key, "sdpa", {"sdpa": 0.001})
    calls: list = []
    timed_choice(_runner(calls), TIMED, x, mask, False, DecisionCache(tmp_path / "d.json"))
    assert len(calls) == 4 * len(TIMED)
    timed = DecisionCache(tmp_path / "d.json").get(versions_key(x.device), key)
    written = {"reference": "sdpa", "sdpa": "triton", "triton": "reference"}[timed]  # not the timed winner
    cache.put(versions_key(x.device), key, written, {written: 1e9})
    calls.clear()
    assert timed_choice(_runner(calls), TIMED, x, mask, False, DecisionCache(tmp_path / "d.json")) == written
    assert calls == []


def test_a_path_that_disagrees_with_the_reference_is_dropped(tmp_path) -> None:
    """A path computing something else (here SDPA at twice the softmax scale) never wins."""
    from kernels.masked_attention.dispatch_timing import time_paths
    from kernels.masked_attention.op import run_path

    x, mask, _ = _case(2, 40, 32, "bc")

    def run(path, a, m):
        scale = a.shape[-1] ** -0.5
        return run_path(path, a, m, 2 * scale if path == "sdpa" else scale)

    times, dropped = time_paths(run, TIMED, x * 3, mask, grad=False)
    assert "sdpa" in dropped and "disagrees with reference" in dropped["sdpa"]
    assert set(times) == {"reference", "triton"}


def test_cpu_calls_keep_the_rules_and_never_time(tmp_path, monkeypatch) -> None:
    from kernels.masked_attention.dispatch import pick_path

    monkeypatch.setenv("EDGE_REID_DISPATCH_CACHE", str(tmp_path / "d.json"))
    x, mask, grad = _case(2, 30, 24, "bnc")
    calls: list = []
    assert pick_path(x.requires_grad_(), mask, 0.2, _runner(calls)) == "triton"  # the custom op: reference inside
    assert calls == [] and not (tmp_path / "d.json").exists()
    y = masked_channel_attention(x, mask)
    torch.testing.assert_close(y, masked_channel_attention_reference(x, mask), rtol=1e-5, atol=1e-6)


def test_unwritable_cache_warns_and_still_chooses(tmp_path) -> None:
    from kernels.masked_attention.dispatch_timing import DecisionCache, timed_choice

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    x, mask, _ = _case(1, 16, 16, "bc")
    with pytest.warns(UserWarning, match="could not write"):
        assert timed_choice(_runner([]), TIMED, x, mask, False, DecisionCache(blocker / "d.json")) in TIMED
