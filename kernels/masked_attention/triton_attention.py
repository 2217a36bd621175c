"""The Triton path of masked-channel attention: one-tile kernels up to C = 256, channel tiles above.

* C <= ``triton_common.MAX_HEAD`` (256): ``triton_forward`` / ``triton_backward`` hold the whole
  (padded) channel dimension in one tile (Q loaded and masked once per program, one dot per
  logits tile, symmetric backward for C <= 64, FA2's dQ + dK/dV split above, epilogue in the
  kernels);
* wider C: ``triton_tiled`` (channel-tiled logits, output-channel blocks).

Both never materialise the N x N matrix: peak extra memory O(N C).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from kernels._triton_utils import interpreting
from kernels.masked_attention.triton_common import FLOAT32_MAX_HEAD, MAX_HEAD, head_tile


def one_tile(channels: int, dtype: torch.dtype, device: Optional[torch.device] = None) -> bool:
    """Whether C channels of ``dtype`` go to the one-tile kernels (else the channel-tiled ones).

    16-bit inputs up to C = 256. float32 runs its dots as three TF32 products (tf32x3), which
    triples the operand tiles: above HEAD = :data:`FLOAT32_MAX_HEAD` the one-tile kernels exceed
    the shared memory and spill on sm_90, and before sm_90 (mma.sync) the symmetric backward
    spills 1.6 KiB even at HEAD 32 (compile check), so float32 takes the channel-tiled IEEE
    kernels there. The interpreter has neither limit and checks the one-tile kernels' arithmetic
    in float32 at every HEAD."""
    if int(channels) > MAX_HEAD:
        return False
    if dtype != torch.float32 or interpreting():
        return True
    hopper = device is None or device.type != "cuda" or torch.cuda.get_device_capability(device)[0] >= 9
    return hopper and head_tile(channels) <= FLOAT32_MAX_HEAD


def mca_forward(x: torch.Tensor, mask: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Triton forward: (Y as B x N x C contiguous, natural-log lse as B x N float32)."""
    if one_tile(x.shape[-1], x.dtype, x.device):
        from kernels.masked_attention.triton_forward import onetile_forward

        return onetile_forward(x, mask, scale)
    from kernels.masked_attention.triton_tiled import tiled_forward

    return tiled_forward(x, mask, scale)


def mca_backward(grad_out: torch.Tensor, x: torch.Tensor, mask: torch.Tensor, out: torch.Tensor,
                 lse: torch.Tensor, scale: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Triton backward: (dX, dM) with dM shaped like the mask (summed over N for a B x C mask)."""
    if one_tile(x.shape[-1], x.dtype, x.device):
        from kernels.masked_attention.triton_backward import onetile_backward

        return onetile_backward(grad_out, x, mask, out, lse, scale)
    from kernels.masked_attention.triton_tiled import tiled_backward

    return tiled_backward(grad_out, x, mask, out, lse, scale)


__all__ = ["mca_backward", "mca_forward", "one_tile"]
