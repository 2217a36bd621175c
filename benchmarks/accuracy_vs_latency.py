"""Benchmark script: Rank-1/mAP of each artifact joined with its latency, accuracy per GMAC and the Pareto plot.

The same as ``edge-reid bench --stages accuracy`` with every option of ``edge-reid bench``
(see ``--help``); results go to ``--out`` (default runs/bench) as CSV/JSON/PNG.
"""

import sys

from edge_reid.bench.command import script_main

if __name__ == "__main__":
    sys.exit(script_main(["accuracy"], prog="accuracy_vs_latency.py"))
