"""Triton kernels with PyTorch references and custom ops (see docs: shared/specs/kernels.md).

* :func:`masked_channel_attention` - DCS-Attention's masked-channel (softmax) attention.
* :func:`linear_attention` - DCS-Attention's linear (non-local) form, scale * Q K^T V.
* :func:`scale_fusion` - VisNet's fused scale-attention summation (exact cheaper form).
"""

from kernels.linear_attention import linear_attention, linear_attention_reference
from kernels.masked_attention.op import masked_channel_attention
from kernels.masked_attention.reference import masked_channel_attention_reference
from kernels.scale_fusion import AttentionMLP, Projection, scale_fusion, scale_fusion_reference

__all__ = ["linear_attention", "linear_attention_reference", "masked_channel_attention",
           "masked_channel_attention_reference", "AttentionMLP", "Projection", "scale_fusion", "scale_fusion_reference"]
