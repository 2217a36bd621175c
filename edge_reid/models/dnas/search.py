"""DCS-DNAS search (the paper's section 3.4 / 4.2 on an FBNetV2 supernet).

    python -m edge_reid.models.dnas.search --data synthetic --space tiny --epochs 2 --out DIR

The training samples are split 80/20 per identity (every id keeps images on both sides, so the
classifier serves both). Each step: a weight step (SGD with momentum, step decay by epoch) on a
batch of the 80% with the training loss of Eq. 4, L = CE + triplet + eta * IBB; then an
architecture step (Adam, cosine schedule by step) on a batch of the 20% on the block logits, the
width logits (FBNetV2 channel masking) and the DCS sampling layers, with the loss
L * alpha * log(LAT_us) ** beta (FBNet's latency term; LAT is the expected latency from the
table measured on this machine). IBB starts from one pass of the initial supernet. Writes
``arch.json`` (build it with ``build_model("dcs_searched", n, arch=...)``), ``latency_table.json``
and ``search.json``.
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


def split_samples(records: Sequence[Any], holdout: float = 0.2, seed: int = 0) -> Tuple[List[Any], List[Any]]:
    """(weight records, architecture records): a seeded ``holdout`` share of every identity's images
    goes to the second (at least one of an id with two or more images; none of an id with one)."""
    if not 0.0 < holdout < 1.0:
        raise InvalidInputError(f"The sample split needs 0 < holdout < 1, got {holdout}.")
    by_id: Dict[int, List[int]] = {}
    for i, r in enumerate(records):
        by_id.setdefault(r.pid, []).append(i)
    rng = np.random.default_rng(seed)
    arch: set = set()
    for pid in sorted(by_id):
        idx = by_id[pid]
        if len(idx) < 2:
            continue
        n = min(len(idx) - 1, max(1, int(round(holdout * len(idx)))))
        arch.update(int(j) for j in rng.permutation(idx)[:n])
    if not arch:
        raise InvalidInputError("The sample split needs identities with at least two images.")
    return [r for i, r in enumerate(records) if i not in arch], [r for i, r in enumerate(records) if i in arch]


def latency_cost(latency_us: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """FBNet's multiplicative latency factor alpha * log(LAT) ** beta (LAT in microseconds, >= e)."""
    return alpha * torch.log(latency_us.clamp_min(math.e)) ** beta


def build_optimizers(net: DCSSupernet, epochs: int, steps_per_epoch: int, lr: float, arch_lr: float,
                     milestones: Optional[Sequence[int]] = None) -> Tuple[Any, Any, Any, Any]:
    """(weight SGD, its step-decay schedule by epoch, architecture Adam, its cosine schedule by step)."""
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    if milestones is None:
        milestones = sorted({max(1, round(epochs * f)) for f in (0.5, 0.75)} - {epochs}) if epochs > 1 else []
    w_sched = torch.optim.lr_scheduler.MultiStepLR(w_opt, list(milestones), gamma=0.1)
    a_opt = torch.optim.Adam(list(net.arch_parameters()), lr=arch_lr, betas=(0.5, 0.999), weight_decay=1e-3)
    a_sched = torch.optim.lr_scheduler.CosineAnnealingLR(a_opt, T_max=max(1, epochs * steps_per_epoch))
    return w_opt, w_sched, a_opt, a_sched


def arch_step(net: DCSSupernet, composer: Any, a_opt: Any, images: torch.Tensor, pids: torch.Tensor,
              alpha: float, beta: float) -> Tuple[float, float]:
    """One architecture step: (Eq. 4 loss) x latency term on a held-out batch; returns (loss, latency_us).

    The composer runs in eval mode here, so IBB and DWA statistics only follow the weight batches.
    """
    composer.eval()
    try:
        out = net(images)
        task = composer(out, pids).total
    finally:
        composer.train()
    loss = task * latency_cost(out["latency"], alpha, beta)
    a_opt.zero_grad(set_to_none=True)
    net.zero_grad(set_to_none=True)
    loss.backward()
    a_opt.step()
    return float(loss.detach()), float(out["latency"].detach())


def run_search(
    out: Path,
    data: str = "synthetic",
    data_root: Optional[str] = None,
    space: str = "tiny",
    input_size: Sequence[int] = (64, 32),
    epochs: int = 1,
    max_steps: int = 0,
    p: int = 8,
    k: int = 4,
    lr: float = 0.05,
    arch_lr: float = 0.01,
    eta: float = 0.01,
    alpha: float = 0.2,
    beta: float = 0.6,
    tau0: float = 5.0,
    tau_decay: float = 0.956,
    form: str = "linear",
    key_stride: int = 2,
    seed: int = 0,
    workers: int = 0,
    device: str = "cpu",
    verbose: bool = True,
) -> Dict[str, Any]:
    """Run the search and write its results under ``out``; returns the summary written to search.json."""
    from edge_reid.data import build_dataset
    from edge_reid.data.loader import build_train_loader
    from edge_reid.losses import LossComposer

    started = time.time()
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    search_space = get_space(space)
    size = (int(input_size[0]), int(input_size[1]))
    dataset = build_dataset(data, data_root, verbose=False)
    weight_records, arch_records = split_samples(dataset.train, 0.2, seed)
    weight_loader = build_train_loader(weight_records, size, p, k, seed, workers=workers)
    arch_loader = build_train_loader(arch_records, size, p, k, seed + 1, workers=workers)

    table = measure_latency_table(search_space, size, device=device, path=out / "latency_table.json")
    net = DCSSupernet(search_space, dataset.num_train_pids, size, form=form, key_stride=key_stride).to(device)
    net.set_latency_table(table)
    composer = LossComposer.from_config({"terms": [
        {"name": "cross_entropy", "label_smoothing": 0.1},
        {"name": "triplet", "margin": 0.3},
        {"name": "ibb", "weight": eta, "num_classes": dataset.num_train_pids},
    ]}).to(device)
    steps = len(weight_loader) if max_steps <= 0 else min(max_steps, len(weight_loader))
    w_opt, w_sched, a_opt, a_sched = build_optimizers(net, epochs, steps, lr, arch_lr)
    ibb_init = initial_pass(net, composer, weight_loader, steps, device)
    history: List[Dict[str, Any]] = []
    for epoch in range(epochs):
        net.train()
        net.set_gumbel_tau(tau0 * tau_decay**epoch)
        weight_loader.set_epoch(epoch)
        arch_loader.set_epoch(epoch)
        sums = {"loss": 0.0, "arch_loss": 0.0, "latency_us": 0.0}
        arch_iter = itertools.cycle(arch_loader)
        for images, pids, _, _ in itertools.islice(weight_loader, steps):
            result = composer(net(images.to(device)), pids.to(device))
            w_opt.zero_grad(set_to_none=True)
            result.total.backward()
            w_opt.step()
            a_images, a_pids, _, _ = next(arch_iter)
            arch_loss, latency = arch_step(net, composer, a_opt, a_images.to(device), a_pids.to(device), alpha, beta)
            a_sched.step()
            sums["loss"] += float(result.total.detach())
            sums["arch_loss"] += arch_loss
            sums["latency_us"] += latency
        w_sched.step()
        composer.on_epoch_end(epoch)
        row = {"epoch": epoch + 1, "steps": steps, **{k2: v / max(1, steps) for k2, v in sums.items()},
               "lr": w_opt.param_groups[0]["lr"], "arch_lr": a_opt.param_groups[0]["lr"],
               "ibb": composer.terms["ibb"].epoch_stats(), "arch_probs": net.arch_probabilities()}
        history.append(row)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {row['loss']:.4f}  arch loss {row['arch_loss']:.4f}  "
                  f"expected latency {row['latency_us']:.0f} us  IBB {row['ibb'].get('ibb', float('nan')):.4f}  "
                  f"IB loss {row['ibb'].get('ib_loss', float('nan')):.4f}  widths "
                  f"{[g.choice() for g in net.widths]}", flush=True)
    arch = net.derive_arch()
    export_arch(arch, out / "arch.json")
    chosen_latency = sum(float(m.latency_us[int(m.arch_logits.argmax()), int(net.widths[s["group"]].width_logits.argmax())])
                         for s, m in zip(net.layer_specs, net.mixed))
    summary = {"space": space, "input_size": list(size), "epochs": epochs, "weight_samples": len(weight_records),
               "arch_samples": len(arch_records), "arch": arch, "chosen_latency_us": chosen_latency,
               "ibb_init": ibb_init, "seconds": round(time.time() - started, 1), "history": history}
    atomic_write_json(out / "search.json", summary)
    if verbose:
        print(f"architecture: {out / 'arch.json'} (blocks latency {chosen_latency:.0f} us), {summary['seconds']} s")
    return summary


def initial_pass(net: DCSSupernet, composer: Any, loader: Any, steps: int, device: str) -> Dict[str, Any]:
    """IBB's centroids, beta and Q from the initial supernet on up to ``steps`` weight batches
    (training mode, no gradient, BatchNorm buffers restored)."""
    keys = composer.initial_pass_outputs()
    if not keys:
        return {}
    saved = [b.detach().clone() for b in net.buffers()]
    outs: Dict[str, List[torch.Tensor]] = {k2: [] for k2 in keys}
    labels = []
    net.train()
    with torch.no_grad():
        for images, pids, _, _ in itertools.islice(loader, steps):
            o = net(images.to(device))
            for k2 in keys:
                outs[k2].append(o[k2].float())
            labels.append(pids.to(device))
        for b, old in zip(net.buffers(), saved):
            b.copy_(old)
    return composer.initialise({k2: torch.cat(v) for k2, v in outs.items()}, torch.cat(labels))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="DCS-DNAS architecture search (FBNetV2-style supernet with DCS-Attention).")
    parser.add_argument("--data", default="synthetic", help="dataset name (default: synthetic)")
    parser.add_argument("--data-root", default=None, help="dataset folder (default: the dataset's own location)")
    parser.add_argument("--space", default="tiny", help="search space: tiny (CPU) or fbnetv2 (paper, GPU)")
    parser.add_argument("--input-size", type=int, nargs=2, default=(64, 32), metavar=("H", "W"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=0, help="cap on steps per epoch (0: the whole epoch)")
    parser.add_argument("--p", type=int, default=8, help="identities per batch")
    parser.add_argument("--k", type=int, default=4, help="images per identity")
    parser.add_argument("--eta", type=float, default=0.01, help="IBB weight")
    parser.add_argument("--form", default="linear", help="DCS-Attention form: linear (default) or softmax")
    parser.add_argument("--key-stride", type=int, default=2, help="key subsampling of the linear form (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    try:
        run_search(Path(args.out), data=args.data, data_root=args.data_root, space=args.space,
                   input_size=args.input_size, epochs=args.epochs, max_steps=args.max_steps, p=args.p, k=args.k,
                   eta=args.eta, form=args.form, key_stride=args.key_stride, seed=args.seed, workers=args.workers,
                   device=args.device)
    except EdgeReidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
