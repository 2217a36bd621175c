"""FP32 parity of discontinuous models: rows where PyTorch float32 rounding flips a hard decision."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edge_reid.deploy import parity as P


class HardGate(nn.Module):
    """y = x * [sum(x) > t]: a hard decision like DCS-Attention's channel masks."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (x.sum(dim=1, keepdim=True) > self.threshold).to(x.dtype)


def _near_tie_inputs() -> tuple:
    """Rows whose float32 sum rounds across the threshold while the float64 sum does not."""
    rng = np.random.default_rng(0)
    for _ in range(2000):
        x = rng.standard_normal((1, 33)).astype(np.float32)
        s32 = float(torch.from_numpy(x).sum())
        s64 = float(torch.from_numpy(x).double().sum())
        if s32 != s64:
            t = (s32 + s64) / 2  # between the two sums: float32 and float64 decide differently
            return x, t
    raise AssertionError("no near-tie row found")


def test_a_float32_flip_is_settled_by_float64_and_a_wrong_export_still_fails() -> None:
    x_tie, t = _near_tie_inputs()
    rng = np.random.default_rng(1)
    images = np.concatenate([rng.standard_normal((3, 33)).astype(np.float32) * 4, x_tie])
    model = HardGate(t)
    ref32 = model(torch.from_numpy(images)).numpy()
    exact = model.double()(torch.from_numpy(images).double()).numpy()
    model.float()
    assert np.abs(ref32[3] - exact[3]).max() > 1e-4  # the tie row really flips between float32 and float64

    def embed_float64(rows: np.ndarray) -> np.ndarray:
        return HardGate(t).double()(torch.from_numpy(images[rows]).double()).numpy()

    onnx_like = exact.astype(np.float32)  # an export that decides like float64 (as ONNX Runtime did on DCS)
    before = P.compare("m.onnx", "fp32", "torch", ref32, onnx_like)
    assert not before.passed
    fixed, rows = P.settle_rounding_flips(ref32, onnx_like, 1e-4, embed_float64)
    assert rows == [3]
    assert P.compare("m.onnx", "fp32", "torch", fixed, onnx_like).passed
    np.testing.assert_array_equal(fixed[:3], ref32[:3])  # rows that agreed are untouched

    wrong = onnx_like.copy()
    wrong[1] += 1e-2  # a real export error on a row with no tie
    fixed, rows = P.settle_rounding_flips(ref32, wrong, 1e-4, embed_float64)
    assert 1 not in rows
    assert not P.compare("m.onnx", "fp32", "torch", fixed, wrong).passed


def test_nothing_is_recomputed_when_every_row_agrees() -> None:
    ref = np.ones((4, 8), np.float32)
    calls = []
    fixed, rows = P.settle_rounding_flips(ref, ref + 1e-6, 1e-4, lambda r: calls.append(r) or ref[r])
    assert rows == [] and calls == []
    np.testing.assert_array_equal(fixed, ref)
