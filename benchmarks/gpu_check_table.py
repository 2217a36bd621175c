"""Print the one table of a GPU check run (benchmarks/gpu_check.sh) from the files it left.

Reads, in the given folder: ``steps.txt`` (one line per step: name, exit status, seconds, limit),
``gpu_tests.xml`` (pytest's JUnit report), ``bench_kernels.json`` and ``bench_models.json``. A
missing file becomes a row that says so; nothing is invented. Markdown on stdout.

    python benchmarks/gpu_check_table.py OUT_DIR
"""

from __future__ import annotations

import json
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Dict, List, Optional

HEADER = ["part", "item", "eager / paper order", "torch.compile", "Triton / fast", "ratio", "note"]


def _ms(v: Any) -> str:
    return "" if not isinstance(v, (int, float)) or math.isnan(v) else f"{v:.3f} ms"


def _ratio(v: Any) -> str:
    return "" if not isinstance(v, (int, float)) or math.isnan(v) else f"{v:.2f}x"


def _load(path: Path) -> Optional[Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def step_rows(folder: Path) -> List[List[str]]:
    rows = []
    try:
        lines = (folder / "steps.txt").read_text().splitlines()
    except OSError:
        return [["steps", "steps.txt", "", "", "", "", "missing: the check did not start"]]
    for line in lines:
        name, rc, secs, limit = (line.split() + ["", "", "", ""])[:4]
        state = "ok" if rc == "0" else ("timed out" if rc in ("124", "137") else f"exit {rc}")
        rows.append(["steps", name, "", "", "", "", f"{state}, {secs} s of {limit} s (log: {name}.log)"])
    return rows


def test_rows(folder: Path) -> List[List[str]]:
    try:
        root = ET.parse(folder / "gpu_tests.xml").getroot()
    except (OSError, ET.ParseError):
        return [["GPU tests", "gpu_tests.xml", "", "", "", "", "missing"]]
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    a = suite.attrib if suite is not None else {}
    note = (f"{a.get('tests', '?')} tests: {a.get('failures', '?')} failed, {a.get('errors', '?')} errors, "
            f"{a.get('skipped', '?')} skipped, {float(a.get('time', 'nan')):.0f} s")
    return [["GPU tests", "pytest -m gpu", "", "", "", "", note]]


def kernel_rows(folder: Path) -> List[List[str]]:
    data = _load(folder / "bench_kernels.json")
    if not isinstance(data, dict):
        return [["kernels", "bench_kernels.json", "", "", "", "", "missing"]]
    out = []
    for r in data.get("rows", []):
        ratio = r.get("speedup_vs_compile")
        if not isinstance(ratio, (int, float)) or math.isnan(ratio):
            ratio = r.get("speedup_vs_eager")
        note = str(r.get("achieved", ""))
        if r.get("dispatch_path"):
            note += (f"; SDPA {_ms(r.get('sdpa_ms')) or 'n/a'};"
                     f" dispatch -> {r['dispatch_path']} {_ms(r.get('dispatch_ms'))}")
        out.append(["kernels", f"{r.get('op')} {r.get('shape')}", _ms(r.get("eager_ms")), _ms(r.get("compile_ms")),
                    _ms(r.get("triton_ms")), _ratio(ratio), note])
    return out


def model_rows(folder: Path) -> List[List[str]]:
    data = _load(folder / "bench_models.json")
    if not isinstance(data, dict):
        return [["models", "bench_models.json", "", "", "", "", "missing"]]
    by: Dict[Any, Dict[str, Any]] = {(r["model"], r["batch"]): r for r in data.get("rows", [])}
    out = []
    for (model, batch), r in by.items():
        if model != "visnet_fast_fusion":
            continue
        paper = by.get(("visnet_paper_order", batch), {})
        resnet = by.get(("resnet50", batch), {})
        note = (f"{r['images_per_s']:.0f} img/s, {_ratio(r.get('images_per_s_vs_resnet50'))} of ResNet50 "
                f"({_ms(resnet.get('ms'))}); first call {r['first_call_s']:.1f} s")
        out.append(["models", f"VisNet eval {r['dtype']} batch {batch}", _ms(paper.get("ms")), "", _ms(r["ms"]),
                    _ratio(r.get("speedup_vs_paper_order")), note])
    return out or [["models", "bench_models.json", "", "", "", "", "no VisNet rows"]]


def table(folder: Path) -> str:
    """The markdown table of everything the check left in ``folder``."""
    rows = step_rows(folder) + test_rows(folder) + kernel_rows(folder) + model_rows(folder)
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("Give the folder a GPU check wrote (benchmarks/gpu_check.sh's output folder).")
        return 2
    print(table(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
