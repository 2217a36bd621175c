"""Benchmark script: params (total, per part, inference path) and multiply-adds of every registry model beside the papers' numbers.

The same as ``edge-reid bench --stages complexity`` with every option of ``edge-reid bench``
(see ``--help``); results go to ``--out`` (default runs/bench) as CSV/JSON.
"""

import sys

from edge_reid.bench.command import script_main

if __name__ == "__main__":
    sys.exit(script_main(["complexity"], prog="bench_complexity.py"))
