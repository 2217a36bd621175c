"""Size and cost of a DCS-DNAS search result beside its supernet.

    python benchmarks/dnas_complexity.py RUN/arch.json [--input-size 256 128]

Parameters (with and without the classifier) and multiply-adds (FlopCounterMode, eval mode) of
the supernet of the architecture's space (every candidate block at the widest widths, as it runs
during the search) and of the searched model ``dcs_searched`` builds from the file.
"""

import argparse
import sys
from typing import Any, Dict, List

from edge_reid.bench import report as R
from edge_reid.bench.complexity_table import PAPER_NUM_CLASSES, classifier_params
from edge_reid.bench.complexity import complexity
from edge_reid.cli import run_guarded
from edge_reid.errors import InvalidInputError
from edge_reid.models import build_model
from edge_reid.models.dnas import DCSSupernet, get_space, load_arch


def rows(arch_path: str, size: List[int], num_classes: int = PAPER_NUM_CLASSES) -> List[Dict[str, Any]]:
    arch = load_arch(arch_path)
    if arch["space"] not in ("tiny", "fbnetv2"):
        raise InvalidInputError(f"{arch_path} names no known search space, so it has no supernet to compare with.")
    models = [("supernet", DCSSupernet(get_space(arch["space"]), num_classes, tuple(size), form=arch.get("form", "linear"))),
              ("searched", build_model("dcs_searched", num_classes, arch=arch, input_size=tuple(size)))]
    out = []
    for name, model in models:
        rep = complexity(model, size)
        out.append({"model": f"{name} ({arch['space']})", "input": f"{size[0]}x{size[1]}", "params_M": rep.params / 1e6,
                    "params_no_classifier_M": (rep.params - classifier_params(model)) / 1e6, "mmacs": rep.gmacs * 1e3})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", help="arch.json written by the search")
    parser.add_argument("--input-size", type=int, nargs=2, default=[256, 128], metavar=("H", "W"))
    args = parser.parse_args()

    def go() -> int:
        table = rows(args.arch, args.input_size)
        print(R.markdown_table(table, ["model", "input", "params_M", "params_no_classifier_M", "mmacs"],
                               {"params_M": "params (M)", "params_no_classifier_M": "without classifier (M)",
                                "mmacs": "MMACs"}))
        return 0

    return run_guarded(go, prog="dnas_complexity.py")


if __name__ == "__main__":
    sys.exit(main())
