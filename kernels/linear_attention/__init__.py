"""Linear attention (DCS-Attention's ``linear`` form): Y = scale * Q K^T V, cheaper order by shape;
``masked_linear_attention`` takes the tokens and their channel mask (Triton kernels, mask applied on load)."""

from kernels.linear_attention.masked import masked_linear_attention
from kernels.linear_attention.op import linear_attention
from kernels.linear_attention.reference import (
    choose_order,
    linear_attention_backward_reference,
    linear_attention_flops,
    linear_attention_reference,
    masked_linear_attention_reference,
)

__all__ = [
    "choose_order",
    "linear_attention",
    "linear_attention_backward_reference",
    "linear_attention_flops",
    "linear_attention_reference",
    "masked_linear_attention",
    "masked_linear_attention_reference",
]
