"""Build deployable artifacts end to end: ``python export/build_engine.py [options]``.

The same as ``edge-reid build``; with no arguments it runs the embedded default (VisNet on the
synthetic set, ONNX FP32/FP16/INT8, TensorRT when available, parity gates, latency table).
"""

import sys

from edge_reid.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
