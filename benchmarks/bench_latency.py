"""Benchmark script: latency p50/p90/p99 and images/s per model x backend x precision x batch, ratios to PyTorch eager FP32.

The same as ``edge-reid bench --stages latency`` with every option of ``edge-reid bench``
(see ``--help``); results go to ``--out`` (default runs/bench) as CSV/JSON.
"""

import sys

from edge_reid.bench.command import script_main

if __name__ == "__main__":
    sys.exit(script_main(["latency"], prog="bench_latency.py"))
