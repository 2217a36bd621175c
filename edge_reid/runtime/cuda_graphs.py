"""Batch buckets and CUDA-graph capture for the torch backend.

A CUDA graph replays a fixed sequence of kernels on fixed buffers, so it serves one batch size. The
torch backend captures one graph per *bucket* (1, 2, 4, ..., 128 by default) the first time a batch
falls into it: a batch of n images is padded up to the smallest bucket >= n (the padded rows are
dropped from the output; in eval mode every row is computed independently), and a batch above the
largest bucket runs as full largest-bucket chunks plus a padded remainder. The planning and padding
are plain numpy (tested on a CPU); :class:`CudaGraphRunner` needs a CUDA device.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError

#: Default batch buckets (powers of two up to 128).
DEFAULT_BUCKETS: Tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)


def check_buckets(buckets: Sequence[int]) -> Tuple[int, ...]:
    """Sorted unique positive buckets; anything else is one sentence."""
    try:
        values = tuple(sorted({int(b) for b in buckets}))
    except (TypeError, ValueError):
        values = ()
    if not values or values[0] < 1:
        raise InvalidInputError(f"Batch buckets must be positive integers, got {list(buckets)!r}.")
    return values


def bucket_for(n: int, buckets: Sequence[int]) -> int:
    """The smallest bucket holding ``n`` rows (the largest bucket when none does)."""
    for b in buckets:
        if n <= b:
            return int(b)
    return int(buckets[-1])


def plan(n: int, buckets: Sequence[int]) -> List[Tuple[int, int, int]]:
    """Chunks (start, rows, bucket) covering ``n`` rows: full largest-bucket chunks, then a padded rest."""
    largest = int(buckets[-1])
    chunks = []
    start = 0
    while start < n:
        rows = min(largest, n - start)
        chunks.append((start, rows, bucket_for(rows, buckets)))
        start += rows
    return chunks


def pad_rows(batch: np.ndarray, rows: int) -> np.ndarray:
    """``batch`` with zero rows appended up to ``rows`` (itself when it has that many)."""
    if len(batch) == rows:
        return batch
    if len(batch) > rows:
        raise ValueError(f"cannot pad {len(batch)} rows down to {rows}")
    pad = np.zeros((rows - len(batch), *batch.shape[1:]), dtype=batch.dtype)
    return np.concatenate([batch, pad], axis=0)


class BucketRunner:
    """Runs a batch through one callable per bucket (``make(bucket)``, built on first use), padding and trimming."""

    def __init__(self, make: Callable[[int], Callable[[np.ndarray], np.ndarray]], buckets: Sequence[int] = DEFAULT_BUCKETS) -> None:
        self.buckets = check_buckets(buckets)
        self._make = make
        self.runners: Dict[int, Callable[[np.ndarray], np.ndarray]] = {}

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        outs = []
        for start, rows, bucket in plan(len(batch), self.buckets):
            if bucket not in self.runners:
                self.runners[bucket] = self._make(bucket)
            out = self.runners[bucket](pad_rows(batch[start:start + rows], bucket))
            outs.append(np.asarray(out)[:rows])
        return np.concatenate(outs, axis=0)


class CudaGraphRunner(BucketRunner):
    """One captured CUDA graph per bucket; ``forward(x_float32) -> embeddings`` is what gets captured.

    Buffers are static per bucket and the graphs share one memory pool. Each bucket is warmed up on a
    side stream before capture (so autotuning Triton kernels and cuDNN pick their algorithms outside it).
    """

    def __init__(self, forward: Callable[[Any], Any], input_shape: Sequence[int], device: str,
                 buckets: Sequence[int] = DEFAULT_BUCKETS, warmup: int = 3) -> None:
        import torch

        self._torch = torch
        self.forward = forward
        self.input_shape = tuple(int(v) for v in input_shape)
        self.device = torch.device(device)
        self.warmup = int(warmup)
        self.pool = None
        super().__init__(self._capture, buckets)

    def _capture(self, bucket: int) -> Callable[[np.ndarray], np.ndarray]:
        torch = self._torch
        static_in = torch.zeros((bucket, *self.input_shape), dtype=torch.float32, device=self.device)
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, pool=self.pool):
            static_out = self.forward(static_in)
        self.pool = graph.pool()
        host_in = torch.empty(static_in.shape, dtype=torch.float32, pin_memory=True)

        def run(batch: np.ndarray) -> np.ndarray:
            host_in.numpy()[...] = batch
            static_in.copy_(host_in, non_blocking=True)
            graph.replay()
            return static_out.float().cpu().numpy()

        run.graph = graph  # type: ignore[attr-defined]  # kept alive with the closure
        return run
