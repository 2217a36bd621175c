"""Compile every Triton kernel for GPU architectures without a GPU, and report their resources.

For each kernel launch x autotune config x dtype x architecture: compile time, shared memory
(and whether it fits the architecture's per-block limit), registers per thread and bytes spilled
to local memory (read from the cubin with cuobjdump). A compile error is a row with the error,
and the exit status is 1. Rows go to a CSV and a JSON file (atomic writes).

    python benchmarks/compile_kernels.py [--arch sm90 sm87] [--dtype float32 float16 bfloat16]
                                         [--shapes spec odd] [--first-config] [--only attention]
                                         [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from edge_reid.bench.report import write_csv, write_json
from edge_reid.cli import run_guarded
from edge_reid.errors import InvalidInputError
from kernels._triton_utils import TRITON_DTYPES
from kernels.compile_check import SHAPES, BuildReport, check_kernels, parse_arch
from kernels.compile_check_attention import check_attention_kernels

FIELDS = ["kernel", "config", "dtype", "shapes", "arch", "ok", "seconds", "shared_bytes", "fits", "registers", "spill_bytes",
          "hgmma", "hmma", "gmma_waits", "async_copies", "error"]


def _print_row(r: BuildReport) -> None:
    if not r.ok:
        print(f"sm_{r.arch} {r.dtype:4s} {r.shapes:4s} {r.kernel:28s} {r.config:50s} FAILED: {r.error}", flush=True)
        return
    fits = "fits" if r.fits else "TOO MUCH SHARED MEMORY"
    spill = "?" if r.spill_bytes is None else r.spill_bytes
    print(f"sm_{r.arch} {r.dtype:4s} {r.shapes:4s} {r.kernel:28s} {r.config:50s} {r.seconds:5.1f} s  shared "
          f"{r.shared_bytes / 1024:6.1f} KiB ({fits})  regs {r.registers}  spill {spill} B  "
          f"HGMMA {r.hgmma} HMMA {r.hmma} waits {r.gmma_waits}", flush=True)


def write_reports(reports: List[BuildReport], out_dir: Path) -> None:
    """CSV and JSON with the same rows (atomic writes)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [r.as_dict() for r in reports]
    write_csv(out_dir / "compile_kernels.csv", rows, FIELDS)
    write_json(out_dir / "compile_kernels.json", {"rows": rows})


def run(args: argparse.Namespace) -> int:
    archs = [parse_arch(a) for a in args.arch]
    unknown = [d for d in args.dtype if d not in TRITON_DTYPES]
    if unknown:
        raise InvalidInputError(f"unknown dtype {unknown[0]!r}; choose from {', '.join(TRITON_DTYPES)}")
    dtypes = [TRITON_DTYPES[d] for d in args.dtype]
    if args.only == "attention":
        reports = check_attention_kernels(archs, dtypes, shapes=args.shapes, on_report=_print_row)
    else:
        reports = check_kernels(archs, dtypes, shapes=args.shapes, first_config_only=args.first_config,
                                on_report=_print_row)
    write_reports(reports, Path(args.out))
    failed = [r for r in reports if not r.ok]
    spilled = [r for r in reports if r.ok and r.spill_bytes]
    too_big = [r for r in reports if r.ok and not r.fits]
    print(f"{len(reports)} builds: {len(failed)} failed, {len(too_big)} over the shared-memory limit, "
          f"{len(spilled)} spill registers. Wrote {args.out}/compile_kernels.csv and .json")
    return 1 if failed else 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: returns the exit status."""
    ap = argparse.ArgumentParser(prog="compile_kernels.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", nargs="+", default=["sm90", "sm87"],
                    help="targets: sm80/sm86/sm87/sm89/sm90 or a100, orin, l4, h100, h200 ... (default sm90 sm87)")
    ap.add_argument("--dtype", nargs="+", default=list(TRITON_DTYPES), help="input dtypes (default all three)")
    ap.add_argument("--shapes", nargs="+", default=["spec"], choices=sorted(SHAPES),
                    help="sample sizes: spec (the benchmark shapes) and/or odd (ragged tiles); default spec")
    ap.add_argument("--first-config", action="store_true", help="only each kernel's first autotune config")
    ap.add_argument("--only", choices=["attention"], default=None,
                    help="attention: only the masked-attention kernels, every configuration each launch may run "
                         "(the tile table's row for its channel tile), with HGMMA / HMMA counts")
    ap.add_argument("--out", default="benchmarks/results", help="folder for compile_kernels.csv/.json")
    args = ap.parse_args(argv)
    return run_guarded(lambda: run(args), prog="compile_kernels.py")


if __name__ == "__main__":
    sys.exit(main())
