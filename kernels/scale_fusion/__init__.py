"""VisNet's fused scale-attention summation: reference, exact cheaper form, Triton weighted sum."""

from kernels.scale_fusion.fast import scale_fusion_fast
from kernels.scale_fusion.op import scale_fusion, weighted_scale_sum
from kernels.scale_fusion.reference import AttentionMLP, Projection, scale_fusion_reference

__all__ = ["AttentionMLP", "Projection", "scale_fusion", "scale_fusion_fast", "scale_fusion_reference",
           "weighted_scale_sum"]
