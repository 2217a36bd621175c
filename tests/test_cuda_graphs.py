"""Torch backend serving options: batch buckets and padding (CPU), CUDA graphs and half precision (GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_reid.errors import InvalidInputError
from edge_reid.models import build_model
from edge_reid.models.checkpoint import save_checkpoint
from edge_reid.runtime import load_embedder
from edge_reid.runtime.cuda_graphs import DEFAULT_BUCKETS, BucketRunner, bucket_for, check_buckets, pad_rows, plan
from edge_reid.runtime.torch_backend import serving_options

SIZE = (64, 32)


def test_bucket_is_the_smallest_that_holds_the_batch():
    for n in range(1, 300):
        b = bucket_for(n, DEFAULT_BUCKETS)
        assert b in DEFAULT_BUCKETS
        if n <= DEFAULT_BUCKETS[-1]:
            assert b >= n and all(c < n for c in DEFAULT_BUCKETS if c < b)
        else:
            assert b == DEFAULT_BUCKETS[-1]


@pytest.mark.parametrize("n", [1, 3, 8, 127, 128, 129, 300, 512])
def test_plan_covers_every_row_once_with_padded_chunks(n):
    chunks = plan(n, DEFAULT_BUCKETS)
    covered = [i for start, rows, _ in chunks for i in range(start, start + rows)]
    assert covered == list(range(n))
    for _, rows, bucket in chunks:
        assert rows <= bucket == bucket_for(rows, DEFAULT_BUCKETS)
    assert all(rows == DEFAULT_BUCKETS[-1] for _, rows, _ in chunks[:-1])


def test_pad_rows_appends_zero_rows():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    padded = pad_rows(x, 8)
    assert padded.shape == (8, 4) and np.array_equal(padded[:3], x) and not padded[3:].any()
    assert pad_rows(x, 3) is x
    with pytest.raises(ValueError):
        pad_rows(x, 2)


def test_bad_buckets_are_one_sentence():
    assert check_buckets([8, 1, 8, 4]) == (1, 4, 8)
    for bad in ([], [0, 2], ["x"]):
        with pytest.raises(InvalidInputError, match="Batch buckets"):
            check_buckets(bad)


def test_bucket_runner_pads_runs_once_per_bucket_and_trims():
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=3, input_size=SIZE).eval()
    seen = []

    def make(bucket):
        seen.append(bucket)

        def run(x):
            assert x.shape[0] == bucket
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()

        return run

    runner = BucketRunner(make, buckets=(1, 2, 4))
    x = np.random.default_rng(0).random((7, 3, *SIZE), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner(x), ref, atol=1e-5)  # chunks 4 + 3 (padded to 4)
    np.testing.assert_allclose(runner(x[:3]), ref[:3], atol=1e-5)
    np.testing.assert_allclose(runner(x[:1]), ref[:1], atol=1e-5)
    assert seen == [4, 1]


def test_cpu_serving_defaults_and_refusals():
    assert serving_options("cpu", None, None, None) == ("fp32", False, False)
    assert serving_options("cuda:0", None, None, None) == ("fp16", True, True)
    assert serving_options("cuda", "bf16", False, False) == ("bf16", False, False)
    with pytest.raises(InvalidInputError, match="CUDA device only"):
        serving_options("cpu", "fp16", None, None)
    with pytest.raises(InvalidInputError, match="CUDA graphs need a CUDA device"):
        serving_options("cpu", None, None, True)
    with pytest.raises(InvalidInputError, match="runs in fp32, fp16, bf16"):
        serving_options("cuda", "int8", None, None)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=3, input_size=SIZE).eval()
    return save_checkpoint(tmp_path_factory.mktemp("graphs") / "r50.pth", model, model.meta("test"))


def test_cpu_torch_backend_stays_fp32_eager(checkpoint):
    embedder = load_embedder(checkpoint, "torch", device="cpu")
    assert (embedder.precision, embedder.graphs) == ("fp32", None)
    with pytest.raises(InvalidInputError):
        load_embedder(checkpoint, "torch", device="cpu", precision="bf16")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_cuda_graph_half_precision_matches_fp32_eager(checkpoint, precision):
    eager = load_embedder(checkpoint, "torch", device="cuda", precision="fp32", cuda_graphs=False, channels_last=False)
    fast = load_embedder(checkpoint, "torch", device="cuda", precision=precision)
    assert fast.graphs is not None and fast.channels_last
    for n in (1, 5, 130):
        x = np.random.default_rng(n).random((n, 3, *SIZE), dtype=np.float32)
        a, b = eager.embed(x), fast.embed(x)
        assert a.shape == b.shape == (n, eager.embedding_dim)
        assert ((a * b).sum(1)).min() >= (0.999 if precision == "fp16" else 0.995)
    assert sorted(fast.graphs.runners) == [1, 2, 8, 128]  # 130 = 128 + 2
