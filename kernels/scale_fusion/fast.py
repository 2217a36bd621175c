"""The exact cheaper form of VisNet's fusion, in plain PyTorch ops (used on CPU and for ONNX).

Bilinear downsampling (align_corners=False) by an integer factor reads only a few source rows and
columns (s*i + s/2 - 1 and s*i + s/2 for an even factor, one for an odd one). Conv1x1, BN and
ReLU act per position, so projecting only the sampled sub-grid and blending it with the
interpolation weights equals projecting the whole map and resizing it. In training the BN batch
statistics of the full projected map come from the input's moments: mean_d = w_d . mu and
var_d = w_d^T Sigma w_d (Sigma the centred channel covariance), exactly as in the full form,
gradients included. GAP(fused) = sum_s w_s GAP(P_s) needs no extra pass over the fused map.
"""

from __future__ import annotations

from functools import lru_cache
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from edge_reid.errors import InvalidInputError
from kernels.scale_fusion.reference import AttentionMLP, Projection, average_factor, combine


@lru_cache(maxsize=64)
def bilinear_taps(in_size: int, out_size: int) -> Tuple[Tuple[int, ...], Tuple[Tuple[float, ...], ...]]:
    """(source indices read, out x len(indices) blend matrix) of 1-D bilinear resizing.

    Same arithmetic as PyTorch (align_corners=False, no antialias): src = max((i + 0.5) * in/out
    - 0.5, 0), taps floor(src) and the next one (clamped) with weights 1 - frac, frac. Only the
    indices with a non-zero weight are kept.
    """
    scale = in_size / out_size
    rows = []
    for i in range(out_size):
        src = max((i + 0.5) * scale - 0.5, 0.0)
        i0 = min(int(src), in_size - 1)
        i1 = min(i0 + 1, in_size - 1)
        lam = src - i0
        rows.append({i0: 1.0 - lam} if lam == 0.0 or i1 == i0 else {i0: 1.0 - lam, i1: lam})
    idx = tuple(sorted({k for r in rows for k in r}))
    pos = {k: j for j, k in enumerate(idx)}
    mat = []
    for r in rows:
        line = [0.0] * len(idx)
        for k, v in r.items():
            line[pos[k]] += v
        mat.append(tuple(line))
    return idx, tuple(mat)


def sampling_plan(in_hw: Tuple[int, int], out_hw: Tuple[int, int], device: torch.device, dtype: torch.dtype):
    """Row/column indices to project and the row/column blend matrices (as tensors).

    Built once per (sizes, device, dtype) and cached (:func:`_plan_tensors`): later calls make no
    tensor from Python data, so no host-to-device copy (and no stream synchronisation) per call.
    """
    for a, b in zip(in_hw, out_hw):
        if a % b != 0:
            raise InvalidInputError(
                f"Stage resolution {tuple(in_hw)} must be an integer multiple of the target {tuple(out_hw)}.")
    key = ((int(in_hw[0]), int(in_hw[1])), (int(out_hw[0]), int(out_hw[1])), torch.device(device), dtype)
    if torch.compiler.is_compiling():  # traced (torch.compile / export): graph constants, never cached
        return _make_plan(*key)
    return _plan_tensors(*key)


def _make_plan(in_hw: Tuple[int, int], out_hw: Tuple[int, int], device: torch.device, dtype: torch.dtype):
    """Source indices and weights of the bilinear taps along each axis, as tensors on ``device``."""
    ih, ah = bilinear_taps(in_hw[0], out_hw[0])
    iw, aw = bilinear_taps(in_hw[1], out_hw[1])
    return (torch.tensor(ih, device=device), torch.tensor(iw, device=device),
            torch.tensor(ah, device=device, dtype=dtype), torch.tensor(aw, device=device, dtype=dtype))


@lru_cache(maxsize=128)
def _plan_tensors(in_hw: Tuple[int, int], out_hw: Tuple[int, int], device: torch.device, dtype: torch.dtype):
    """:func:`_make_plan` built once per key in eager mode (read-only constants, never written).

    Built outside inference mode, so that a plan first made under ``torch.inference_mode`` can
    still be saved for backward by a later training step. Never called while tracing: a tensor
    cached there would be a trace's fake tensor, and the grad-mode switch would split the graph
    (``torch.export`` put the fused ops inside ``wrap_with_set_grad_enabled`` subgraphs).
    """
    with torch.inference_mode(False), torch.no_grad():
        return _make_plan(in_hw, out_hw, device, dtype)


def batch_moments(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Channel mean mu (C) and centred covariance Sigma (C x C, biased) over batch and positions."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    n = flat.shape[0] * flat.shape[2]
    mu = flat.mean(dim=(0, 2))
    xc = flat - mu[None, :, None]
    sigma = torch.matmul(xc, xc.transpose(1, 2)).sum(0) / n
    return mu, sigma


def folded_affine(p: Projection, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """BN as y * scale + shift for this step (batch statistics from moments when training).

    Also updates the running statistics in training, exactly as nn.BatchNorm2d would.
    """
    w = p.weight.reshape(p.weight.shape[0], -1)
    if p.uses_batch_stats:
        mu, sigma = batch_moments(x)
        mean = torch.matmul(w, mu)
        var = (torch.matmul(w, sigma) * w).sum(1)
        factor = average_factor(p)
        if p.training and p.running_mean is not None:
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                p.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                p.running_var.mul_(1 - factor).add_(var.detach() * (n / max(n - 1, 1)), alpha=factor)
    else:
        mean, var = p.running_mean, p.running_var
    scale = p.bn_weight * torch.rsqrt(var + p.eps)
    return scale, p.bn_bias - mean * scale


def project_sampled(p: Projection, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """P = resize(ReLU(BN(Conv1x1(x)))) computed only at the positions the resize reads."""
    scale, shift = folded_affine(p, x)
    return project_sampled_affine(x, p.weight.reshape(p.weight.shape[0], -1), scale, shift, size)


def sampled_preactivation(x: torch.Tensor, ws: torch.Tensor, shift: torch.Tensor,
                          size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor, tuple]:
    """(xs, z, plan): the input at the positions resizing to ``size`` reads, the projection
    z = ws xs + shift there (ws: D x C, BN scale folded in), and the ``sampling_plan``."""
    in_h, in_w = int(x.shape[-2]), int(x.shape[-1])
    plan = sampling_plan((in_h, in_w), size, x.device, x.dtype)
    ih, iw = plan[0], plan[1]
    if in_h != size[0]:
        x = x.index_select(2, ih)
    if in_w != size[1]:
        x = x.index_select(3, iw)
    return x, F.conv2d(x, ws[:, :, None, None], shift), plan


def project_sampled_affine(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor,
                           size: Tuple[int, int]) -> torch.Tensor:
    """resize(ReLU((w * scale) x + shift)) at the sampled positions only (w: D x C, BN already folded)."""
    in_h, in_w = int(x.shape[-2]), int(x.shape[-1])
    _, z, (_, _, ah, aw) = sampled_preactivation(x, w * scale[:, None], shift, size)
    y = F.relu(z)
    if in_h != size[0]:
        y = torch.matmul(ah, y)  # out_h x taps_h, applied along rows
    if in_w != size[1]:
        y = torch.matmul(y, aw.t())
    return y


def scale_fusion_fast(
    feats: Sequence[torch.Tensor], f4: torch.Tensor, projections: Sequence[Projection], mlp: Optional[AttentionMLP]
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same result as :func:`scale_fusion_reference` (fused, weights, gap) with far fewer FLOPs."""
    size = (int(f4.shape[-2]), int(f4.shape[-1]))
    maps: List[torch.Tensor] = [project_sampled(p, x, size) for p, x in zip(projections, feats)]
    maps.append(f4)
    return combine(maps, mlp)
