"""Train a model from a YAML config: ``python train/train.py --config train/configs/NAME.yaml``.

The same as ``edge-reid train``; see ``--help``. Works under ``torchrun`` for several processes.
"""

import sys

from edge_reid.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
