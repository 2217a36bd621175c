"""TMPA ablation on the synthetic visible-infrared set: AGW, + PedMix, + MFT, + MSS/MSI, full TMPA.

Every row trains the same way (the AGW synthetic recipe at one budget: ``--epochs`` x 30 steps of
8 ids x (2 visible + 2 infrared) at ``--size``, default 48 x 24, seed 0) and is evaluated with the SYSU-MM01 protocol
(all-search, single-shot, 10 trials). Columns: Rank-1, mAP, mINP (percent), training time (the
summed step time of the epochs, evaluation and checkpoint writes excluded), the wall time of the
row, and the test-time multiply-adds of one image at that size (:mod:`edge_reid.bench.complexity`).

    python benchmarks/tmpa_ablation.py --out runs/tmpa_ablation --jobs 2
    python benchmarks/tmpa_ablation.py --out runs/tmpa_sweep --rows pedmix \\
        --variant r05=pedmix --set r05:data.pedmix.ratios=0.5

Each row's result goes to ``<out>/rows/<row>.json`` (atomically) as soon as it finishes; a row
already there is not retrained (an interrupted row resumes from its ``last.pth``). ``<out>/table.md``
and ``<out>/results.json`` are rewritten (atomically) from all finished rows after every row.
``--jobs 2`` trains two rows at once with one torch thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
AGW = "train/configs/agw_synthetic_vi.yaml"
TMPA = "train/configs/tmpa_synthetic_vi.yaml"
ID_WRT = "loss.terms=[{name: cross_entropy, label_smoothing: 0.0}, {name: wrt}]"

#: row -> (description, config, overrides). PedMix and MFT are each added to AGW alone; MSS/MSI need
#: MFT's specific features, so they are added to AGW + MFT; tmpa is all of them.
ROWS: Dict[str, Tuple[str, str, Tuple[str, ...]]] = {
    "agw": ("AGW", AGW, ()),
    "pedmix": ("AGW + PedMix", AGW, ("data.pedmix.enabled=true",)),
    "mft": ("AGW + MFT (ID + WRT)", TMPA, ("model.options.mft=true", ID_WRT, "data.pedmix=null")),
    "mss_msi": ("AGW + MFT + MSS/MSI", TMPA, ("model.options.mft=true", "data.pedmix=null")),
    "tmpa": ("TMPA (PedMix + MFT + MSS/MSI)", TMPA, ("model.options.mft=true", "data.pedmix.enabled=true")),
}


def budget_overrides(epochs: int, threads: int, run_dir: Path, size: Sequence[int]) -> List[str]:
    """The settings every row shares: the budget, input size, threads, end-only evaluation, the run folder."""
    return [f"train.epochs={epochs}", f"data.input_size=[{size[0]}, {size[1]}]", "train.iters_per_epoch=30", f"train.threads={threads}", "train.seed=0",
            "train.eval_at_start=false", "train.eval_every=0", "train.checkpoint_iters=0",
            "output.tensorboard=false", f"output.dir={run_dir}"]


def train_row(out: Path, name: str, spec: Dict[str, Any], epochs: int, threads: int,
              size: Sequence[int]) -> Dict[str, Any]:
    """Train and evaluate one row; write ``rows/<name>.json`` atomically and return it."""
    from edge_reid.bench.complexity import complexity
    from edge_reid.engine.api import train
    from edge_reid.utils.atomic import atomic_write_json

    run_dir = out / "runs" / name
    last = run_dir / "last.pth"
    overrides = list(spec["overrides"]) + budget_overrides(epochs, threads, run_dir, size)
    load0, start = os.getloadavg(), time.perf_counter()
    result = train(str(ROOT / spec["config"]), overrides, resume=last if last.is_file() else None, verbose=False)
    wall = time.perf_counter() - start
    model = result.model.cpu().eval()
    report = complexity(model, tuple(size), batch=1)
    row = {
        "row": name, "description": spec["description"], "config": spec["config"], "overrides": overrides,
        "rank1": result.metrics.get("rank1"), "mAP": result.metrics.get("mAP"), "mINP": result.metrics.get("mINP"),
        "train_time_s": sum(float(h.get("time_s", 0.0)) for h in result.history), "wall_s": wall,
        "steps": epochs * 30, "input_size": list(size), "macs": report.macs, "params": report.params,
        "loadavg_start": load0, "loadavg_end": os.getloadavg(), "threads": threads,
        "history": result.history, "machine": machine(),
    }
    atomic_write_json(out / "rows" / f"{name}.json", row)
    return row


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (shared)"


def table(rows: Sequence[Dict[str, Any]], pending: Sequence[str]) -> str:
    """The markdown table of the finished rows (and the rows not run)."""
    size = "x".join(str(v) for v in rows[0]["input_size"]) if rows else ""
    lines = [f"| row | Rank-1 | mAP | mINP | training time | wall | MACs ({size}) |",
             "|---|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['description']} | {r['rank1']:.2f} | {r['mAP']:.2f} | {r['mINP']:.2f} | "
                     f"{r['train_time_s'] / 60:.1f} min | {r['wall_s'] / 60:.1f} min | {r['macs'] / 1e6:.1f} M |")
    for name in pending:
        lines.append(f"| {name} | not run | | | | | |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, order: Sequence[str]) -> None:
    from edge_reid.utils.atomic import atomic_write_json, atomic_write_text

    done = {p.stem: json.loads(p.read_text()) for p in sorted((out / "rows").glob("*.json"))}
    rows = [done[n] for n in order if n in done] + [r for n, r in done.items() if n not in order]
    pending = [n for n in order if n not in done]
    atomic_write_json(out / "results.json", {"rows": [{k: v for k, v in r.items() if k != "history"} for r in rows],
                                             "pending": pending})
    atomic_write_text(out / "table.md", table(rows, pending))


def row_specs(names: Sequence[str], variants: Sequence[str], sets: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """Row name -> {description, config, overrides}; variants are ``NAME=BASE`` with ``NAME:key=value`` sets."""
    specs: Dict[str, Dict[str, Any]] = {}
    for name in names:
        if name not in ROWS:
            raise SystemExit(f"Unknown row '{name}'; known rows: {', '.join(ROWS)}.")
        desc, config, overrides = ROWS[name]
        specs[name] = {"description": desc, "config": config, "overrides": list(overrides)}
    for item in variants:
        name, _, base = item.partition("=")
        if base not in ROWS:
            raise SystemExit(f"Variant '{item}' must be NAME=BASE with BASE one of {', '.join(ROWS)}.")
        desc, config, overrides = ROWS[base]
        extra = [s.split(":", 1)[1] for s in sets if s.split(":", 1)[0] == name]
        specs[name] = {"description": f"{desc} [{', '.join(extra)}]", "config": config,
                       "overrides": list(overrides) + extra}
    return specs


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/tmpa_ablation"))
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows (default: all five)")
    parser.add_argument("--variant", action="append", default=[], help="extra row NAME=BASE (a ROWS name)")
    parser.add_argument("--set", action="append", default=[], dest="sets", help="NAME:key=value override of a variant")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of 30 steps (default 8: 240 steps)")
    parser.add_argument("--size", default="48x24", help="input HEIGHTxWIDTH of every row (default 48x24)")
    parser.add_argument("--jobs", type=int, default=2, help="rows trained at once (each with 2 // jobs threads)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = [n for n in args.rows.split(",") if n]
    specs = row_specs(names, args.variant, args.sets)
    threads = max(1, 2 // max(1, args.jobs))
    size = [int(v) for v in args.size.lower().split("x")]
    if args.worker:
        from edge_reid.errors import EdgeReidError

        try:
            train_row(args.out, args.worker, specs[args.worker], args.epochs, threads, size)
        except EdgeReidError as exc:
            print(f"row {args.worker}: {exc}", file=sys.stderr)
            return 2
        return 0
    order = list(specs)
    todo = [n for n in order if not (args.out / "rows" / f"{n}.json").is_file()]
    running: List[Tuple[str, subprocess.Popen]] = []
    failed = []
    base = [sys.executable, str(Path(__file__).resolve()), "--out", str(args.out), "--rows", args.rows,
            "--epochs", str(args.epochs), "--jobs", str(args.jobs), "--size", args.size]
    base += [f"--variant={v}" for v in args.variant] + [f"--set={s}" for s in args.sets]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    while todo or running:
        while todo and len(running) < max(1, args.jobs):
            name = todo.pop(0)
            log = open(args.out / "logs" / f"{name}.log", "w")
            print(f"{time.strftime('%H:%M:%S')} start {name}", flush=True)
            running.append((name, subprocess.Popen(base + ["--worker", name], stdout=log, stderr=subprocess.STDOUT,
                                                   env=env, cwd=str(ROOT))))
        time.sleep(5)
        for name, proc in list(running):
            if proc.poll() is not None:
                running.remove((name, proc))
                print(f"{time.strftime('%H:%M:%S')} end {name}: exit {proc.returncode}", flush=True)
                if proc.returncode != 0:
                    failed.append(name)
                write_summary(args.out, order)
    write_summary(args.out, order)
    print((args.out / "table.md").read_text())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
