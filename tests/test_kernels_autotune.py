"""Autotuning rules (kernels/autotune.py): at most two configurations timed per key, bucketed keys,
pruning by shared memory, dtype and channel tile, timings cached on disk.

These run without a GPU and without the interpreter: the kernels then carry their GPU lists, and
the pruners are plain Python over the launch arguments (CPU tensors stand for the GPU ones).
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton")

from kernels._triton_utils import interpreting  # noqa: E402
from kernels.autotune import MAX_TRIED, autotune, bucket, config_label, has_disk_cache, make_pruner  # noqa: E402
from kernels.launches import autotuned_kernels  # noqa: E402

pytestmark = pytest.mark.skipif(interpreting(), reason="under TRITON_INTERPRET=1 the kernels carry one config")

#: The benchmark's attention shapes (kernels-gpu.md) and two ragged ones.
ATTENTION_SHAPES = [(64, 2048, 256), (8, 8192, 256), (64, 4096, 24), (16, 2048, 2048), (1, 100, 200), (3, 77, 64)]


def _modules():
    from kernels.masked_attention import triton_backward, triton_forward, triton_tiled
    from kernels.scale_fusion import triton_fusion, triton_projection

    return [triton_forward, triton_backward, triton_tiled, triton_fusion, triton_projection]


def _attention_args(b: int, n: int, c: int, dtype: torch.dtype) -> dict:
    from kernels.masked_attention.triton_common import head_tile

    return {"X": torch.empty(b, n, c, dtype=dtype), "N": n, "C": c, "HEAD": head_tile(c)}


def test_bucket_is_the_next_power_of_two() -> None:
    assert [bucket(n) for n in (1, 16, 17, 1500, 2048, 2049)] == [16, 16, 32, 2048, 2048, 4096]
    assert bucket(1, 2) == 2 and bucket(3, 2) == 4


def test_every_kernel_prunes_buckets_and_caches_on_disk() -> None:
    tuners = {f"{m.__name__}.{k}": t for m in _modules() for k, t in autotuned_kernels(m).items()}
    # one-tile attention fwd, delta, symmetric, dQ, dK/dV; tiled fwd, dQ, dK/dV; weighted sum fwd, bwd; projection
    assert len(tuners) == 11
    for name, tuner in tuners.items():
        assert tuner.early_config_prune is not None, name
        assert any(k.endswith("_BUCKET") for k in tuner.keys), name
        assert "N" not in tuner.keys, name  # raw sequence length never keys the tuning
        assert tuner.cache_results == has_disk_cache(), name
        assert all(c.pre_hook is None for c in tuner.configs), name  # a pre_hook disables the disk cache


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
@pytest.mark.parametrize("shape", ATTENTION_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_attention_times_at_most_two_fitting_configs(shape, dtype) -> None:
    """One-tile kernels (C <= 256): at most two configurations, all from the tile table's row for the
    launch's HEAD, within the shared-memory estimate, none that spills in float32. Channel-tiled
    kernels (C > 256): at most two, value tile 256, no float32 spiller."""
    from kernels.autotune import DEFAULT_SHARED
    from kernels.masked_attention import triton_backward as tb
    from kernels.masked_attention import triton_forward as tf
    from kernels.masked_attention import triton_tiled as tt
    from kernels.masked_attention.triton_common import MAX_HEAD

    b, n, c = shape
    args = _attention_args(b, n, c, dtype)
    head, elem = args["HEAD"], torch.empty((), dtype=dtype).element_size()
    if c <= MAX_HEAD:
        kernels = [(tf._fwd, tf.FWD_TABLE, tf.fwd_shared_bytes, tf.FWD_FLOAT32_SPILLS)]
        if head <= 64:
            kernels.append((tb._bwd_sym, tb.SYM_TABLE, tb.sym_shared_bytes, tb.BWD_FLOAT32_SPILLS))
        else:
            kernels += [(tb._bwd_dq, tb.DQ_TABLE, tb.dq_shared_bytes, tb.BWD_FLOAT32_SPILLS),
                        (tb._bwd_dkv, tb.DKV_TABLE, tb.dkv_shared_bytes, tb.BWD_FLOAT32_SPILLS)]
        for tuner, table, shared, spills in kernels:
            kept = tuner.early_config_prune(tuner.configs, args)
            assert 1 <= len(kept) <= MAX_TRIED
            labels = {config_label(k) for k in kept}
            assert labels <= {config_label(k) for k in table[head]}
            for k in kept:
                assert shared({**k.kwargs, "num_stages": k.num_stages}, elem, head) <= DEFAULT_SHARED or len(kept) == 1
            if dtype == torch.float32:
                assert not labels & {config_label(k) for k in spills} or len(table[head]) == len(spills)
        return
    tuner = tt._mca_fwd
    kept = tuner.early_config_prune(tuner.configs, args)
    assert 1 <= len(kept) <= MAX_TRIED
    labels = {config_label(k) for k in kept}
    assert all(k.kwargs["BLOCK_DV"] == 256 for k in kept)
    if dtype == torch.float32:
        assert not labels & {config_label(k) for k in tt._FLOAT32_SPILLS}


def test_shared_memory_limit_prunes() -> None:
    """With a smaller device limit, configurations above it are never timed; if none fits, the
    smallest one is returned rather than nothing."""
    from kernels.masked_attention import triton_tiled as ta

    args = _attention_args(2, 2048, 256, torch.float16)
    configs = ta._mca_fwd.configs
    sizes = {config_label(c): ta._shared_bytes({**c.kwargs, "num_stages": c.num_stages}, 2) for c in configs}
    limit = sorted(sizes.values())[1]  # only the two smallest fit
    prune = make_pruner(tensor_arg="X", shared_bytes=ta._shared_bytes, programs=ta._programs,
                        limits=lambda t: (limit, 132))
    kept = prune(configs, args)
    assert kept and all(sizes[config_label(c)] <= limit for c in kept)
    tiny = make_pruner(tensor_arg="X", shared_bytes=ta._shared_bytes, programs=ta._programs, limits=lambda t: (1, 132))
    assert [config_label(c) for c in tiny(configs, args)] == [min(sizes, key=sizes.get)]


def test_weighted_sum_tiles_follow_grid_size() -> None:
    """VisNet's 8 x 4 maps never get a 64-wide position tile; batch 1 (few programs) takes the
    smallest channel tiles, batch 1024 the largest."""
    from kernels.scale_fusion import triton_fusion as tf

    def kept(b: int):
        args = {"W": torch.empty(b, 4), "D": 2048, "HW": 32}
        return tf._wsum_fwd.early_config_prune(tf._wsum_fwd.configs, args)

    small, large = kept(1), kept(1024)
    assert all(c.kwargs["BLOCK_HW"] <= 32 for c in small + large)
    assert len(small) == len(large) == MAX_TRIED
    assert max(c.kwargs["BLOCK_D"] for c in small) < max(c.kwargs["BLOCK_D"] for c in large)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["fp16", "fp32"])
def test_projection_prunes_float32_spills(dtype) -> None:
    from kernels.scale_fusion import triton_projection as tp

    args = {"X": torch.empty(1, 1024, 16, 8, dtype=dtype), "OUT": torch.empty(128, 2048, 8, 4, dtype=dtype),
            "HW4": 32, "C_OUT": 2048}
    kept = tp._proj_fwd.early_config_prune(tp._proj_fwd.configs, args)
    assert 1 <= len(kept) <= MAX_TRIED
    if dtype == torch.float32:
        assert config_label(tp._GPU[3]) not in {config_label(c) for c in kept}


def test_autotune_helper_passes_cache_and_pruner() -> None:
    prune = make_pruner(tensor_arg="X", shared_bytes=lambda m, e: 0, programs=lambda m, a: 1)
    deco = autotune([dict(BLOCK=16, num_warps=4), dict(BLOCK=32, num_warps=4)], dict(BLOCK=16), key=["K"],
                    pruner=prune)

    @triton.jit
    def _k(X, K, BLOCK: triton.language.constexpr):
        pass

    tuner = deco(_k)
    assert tuner.early_config_prune is prune and len(tuner.configs) == 2
    assert tuner.cache_results == has_disk_cache()
