"""Benchmarks: model complexity (params, multiply-adds), latency and report tables."""

from edge_reid.bench.complexity import ComplexityReport, complexity

__all__ = ["ComplexityReport", "complexity"]
