"""Export a checkpoint to ONNX: ``python export/export_onnx.py --checkpoint run/best.pth``.

The same as ``edge-reid export``.
"""

import sys

from edge_reid.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
