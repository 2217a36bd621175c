"""Masked-channel attention (DCS-Attention): Y = softmax((X*M)(X*M)^T * scale) X."""

from kernels.masked_attention.op import masked_channel_attention
from kernels.masked_attention.reference import (
    masked_channel_attention_backward_reference,
    masked_channel_attention_reference,
)

__all__ = [
    "masked_channel_attention",
    "masked_channel_attention_reference",
    "masked_channel_attention_backward_reference",
]
