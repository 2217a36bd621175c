"""DCS-DNAS search: weights with SGD on 80% of the training ids, architecture with Adam on the rest.

    python -m edge_reid.models.dnas.search --data synthetic --space tiny --epochs 1 --out DIR

Per step: a weight step (SGD) on a batch of the weight ids with CE + triplet + eta * IBB, then an
architecture step (Adam on the mixed layers' logits and the DCS sampling layers) on a batch of the
held-out ids with the FBNet latency-aware loss  L_task * alpha * log(LAT_us) ** beta, where LAT is
the expected latency from the measured table. The held-out ids are unknown to the classifier, so
the architecture step's task loss is the identity-free triplet loss. Writes ``arch.json`` (build it
with ``build_model("dcs_searched", n, arch=...)``), ``latency_table.json`` and ``search.json``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.models.dnas.arch import export_arch
from edge_reid.models.dnas.latency import measure_latency_table
from edge_reid.models.dnas.space import get_space
from edge_reid.models.dnas.supernet import DCSSupernet
from edge_reid.utils.atomic import atomic_write_json


def split_ids(records: Sequence[Any], holdout: float = 0.2, seed: int = 0) -> Tuple[List[Any], List[Any]]:
    """(weight records, architecture records): a seeded ``holdout`` share of the identities goes to the second."""
    pids = sorted({r.pid for r in records})
    if len(pids) < 2 or not 0.0 < holdout < 1.0:
        raise InvalidInputError(f"The id split needs >= 2 identities and 0 < holdout < 1 (got {len(pids)} ids, {holdout}).")
    rng = np.random.default_rng(seed)
    n_arch = min(len(pids) - 1, max(1, int(round(holdout * len(pids)))))
    arch_ids = set(rng.permutation(pids)[:n_arch].tolist())
    return [r for r in records if r.pid not in arch_ids], [r for r in records if r.pid in arch_ids]


def latency_cost(latency_us: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """FBNet's multiplicative latency factor alpha * log(LAT) ** beta (LAT in microseconds, >= e)."""
    return alpha * torch.log(latency_us.clamp_min(math.e)) ** beta


def run_search(
    out: Path,
    data: str = "synthetic",
    data_root: Optional[str] = None,
    space: str = "tiny",
    input_size: Sequence[int] = (64, 32),
    epochs: int = 1,
    max_steps: int = 0,
    p: int = 4,
    k: int = 4,
    lr: float = 0.05,
    arch_lr: float = 0.01,
    eta: float = 0.01,
    alpha: float = 0.2,
    beta: float = 0.6,
    tau0: float = 5.0,
    tau_decay: float = 0.956,
    seed: int = 0,
    workers: int = 0,
    device: str = "cpu",
    verbose: bool = True,
) -> Dict[str, Any]:
    """Run the search and write its results under ``out``; returns the summary written to search.json."""
    from edge_reid.data import build_dataset
    from edge_reid.data.loader import build_train_loader
    from edge_reid.losses import LossComposer
    from edge_reid.losses.triplet import TripletLoss

    started = time.time()
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    search_space = get_space(space)
    size = (int(input_size[0]), int(input_size[1]))
    dataset = build_dataset(data, data_root, verbose=False)
    weight_records, arch_records = split_ids(dataset.train, 0.2, seed)
    n_arch_ids = len({r.pid for r in arch_records})
    weight_loader = build_train_loader(weight_records, size, p, k, seed, workers=workers)
    arch_loader = build_train_loader(arch_records, size, min(p, n_arch_ids), k, seed + 1, workers=workers)

    table = measure_latency_table(search_space, size, device=device, path=out / "latency_table.json")
    net = DCSSupernet(search_space, dataset.num_train_pids, size).to(device)
    net.set_latency_table(table)
    composer = LossComposer.from_config({"terms": [
        {"name": "cross_entropy", "label_smoothing": 0.1},
        {"name": "triplet", "margin": 0.3},
        {"name": "ibb", "weight": eta, "num_classes": dataset.num_train_pids},
    ]}).to(device)
    arch_task = TripletLoss(margin=0.3)
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    a_opt = torch.optim.Adam(list(net.arch_parameters()), lr=arch_lr, betas=(0.5, 0.999))
    history: List[Dict[str, Any]] = []
    for epoch in range(epochs):
        net.train()
        net.set_gumbel_tau(tau0 * tau_decay**epoch)
        weight_loader.set_epoch(epoch)
        arch_loader.set_epoch(epoch)
        steps = len(weight_loader) if max_steps <= 0 else min(max_steps, len(weight_loader))
        sums = {"loss": 0.0, "arch_loss": 0.0, "latency_us": 0.0}
        arch_iter = itertools.cycle(arch_loader)
        for step, (images, pids, _, _) in enumerate(itertools.islice(weight_loader, steps)):
            outputs = net(images.to(device))
            result = composer(outputs, pids.to(device))
            w_opt.zero_grad(set_to_none=True)
            result.total.backward()
            w_opt.step()
            a_images, a_pids, _, _ = next(arch_iter)
            a_out = net(a_images.to(device))
            arch_loss = arch_task(a_out, a_pids.to(device)) * latency_cost(a_out["latency"], alpha, beta)
            a_opt.zero_grad(set_to_none=True)
            arch_loss.backward()
            a_opt.step()
            sums["loss"] += float(result.total.detach())
            sums["arch_loss"] += float(arch_loss.detach())
            sums["latency_us"] += float(a_out["latency"].detach())
        composer.on_epoch_end(epoch)
        row = {"epoch": epoch + 1, "steps": steps, **{k2: v / max(1, steps) for k2, v in sums.items()},
               "ibb": composer.terms["ibb"].epoch_stats(), "arch_probs": net.arch_probabilities()}
        history.append(row)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {row['loss']:.4f}  arch loss {row['arch_loss']:.4f}  "
                  f"expected latency {row['latency_us']:.0f} us  IBB {row['ibb'].get('ibb', float('nan')):.4f}  "
                  f"IB loss {row['ibb'].get('ib_loss', float('nan')):.4f}", flush=True)
    arch = net.derive_arch()
    export_arch(arch, out / "arch.json")
    chosen_latency = sum(float(m.latency_us[int(m.arch_logits.argmax())]) for m in net.mixed)
    summary = {"space": space, "input_size": list(size), "epochs": epochs, "weight_ids": dataset.num_train_pids - n_arch_ids,
               "arch_ids": n_arch_ids, "arch": arch, "chosen_latency_us": chosen_latency,
               "seconds": round(time.time() - started, 1), "history": history}
    atomic_write_json(out / "search.json", summary)
    if verbose:
        print(f"architecture: {out / 'arch.json'} (blocks latency {chosen_latency:.0f} us), {summary['seconds']} s")
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="DCS-DNAS architecture search (FBNetV2-style supernet with DCS-Attention).")
    parser.add_argument("--data", default="synthetic", help="dataset name (default: synthetic)")
    parser.add_argument("--data-root", default=None, help="dataset folder (default: the dataset's own location)")
    parser.add_argument("--space", default="tiny", help="search space: tiny (CPU) or fbnetv2 (paper, GPU)")
    parser.add_argument("--input-size", type=int, nargs=2, default=(64, 32), metavar=("H", "W"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=0, help="cap on steps per epoch (0: the whole epoch)")
    parser.add_argument("--p", type=int, default=4, help="identities per batch")
    parser.add_argument("--k", type=int, default=4, help="images per identity")
    parser.add_argument("--eta", type=float, default=0.01, help="IBB weight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        run_search(Path(args.out), data=args.data, data_root=args.data_root, space=args.space,
                   input_size=args.input_size, epochs=args.epochs, max_steps=args.max_steps, p=args.p, k=args.k,
                   eta=args.eta, seed=args.seed, workers=args.workers, device=args.device)
    except EdgeReidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
