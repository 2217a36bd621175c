"""``train(config, overrides) -> TrainResult``: the one library entry point for training.

The command line (``edge-reid train``, ``train/train.py``) and the export pipeline both call
it. It resolves the config, picks the device, joins a process group under ``torchrun``,
builds data, model, loss and evaluator, and runs the :class:`~edge_reid.engine.trainer.Trainer`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Union

import torch

from edge_reid.engine import distributed
from edge_reid.engine.builders import (build_composer, build_data, build_evaluate, build_model_from_config,
                                       chance_rank1)
from edge_reid.engine.checkpointing import BEST, LAST, load_training_checkpoint, remove_stale_temporaries
from edge_reid.engine.config import load_config, save_config
from edge_reid.engine.hooks import default_hooks
from edge_reid.engine.optim import build_optimizer
from edge_reid.engine.rng import seed_everything, set_deterministic
from edge_reid.engine.runlog import metrics_table
from edge_reid.engine.trainer import Trainer
from edge_reid.errors import InvalidInputError, MissingDependencyError


@dataclass
class TrainResult:
    """What a finished run produced."""

    run_dir: Path
    checkpoint: Path  # best.pth when an evaluation happened, else last.pth
    metrics: Dict[str, float]  # the last evaluation (percent)
    initial_metrics: Dict[str, float] = field(default_factory=dict)  # with train.eval_at_start
    history: list = field(default_factory=list)  # one dict per epoch (as in log.jsonl)
    chance_rank1: float = 0.0
    model: Optional[torch.nn.Module] = field(default=None, repr=False)  # the trained model (unwrapped)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> this rank's GPU when there is one, else the CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InvalidInputError(f"Config key 'train.device' has an unknown device '{name}'.") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MissingDependencyError("Config key 'train.device' asks for CUDA but no CUDA GPU is visible.")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def _run_dir(cfg: Mapping[str, Any], payload: Optional[Mapping[str, Any]]) -> Path:
    if cfg["output"]["dir"]:
        return Path(cfg["output"]["dir"])
    if payload is not None:
        return Path(payload["_path"]).parent
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{cfg['name']}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def train(
    config: Union[str, Path, Mapping[str, Any], None] = None,
    overrides: Iterable[str] = (),
    resume: Union[str, Path, None] = None,
    verbose: bool = True,
) -> TrainResult:
    """Train from a config file or dict with ``key=value`` overrides; ``resume`` continues a run.

    With ``resume`` and no ``config`` the run's own config (stored in the checkpoint) is used.
    """
    payload = load_training_checkpoint(resume) if resume is not None else None
    if config is None:
        if payload is None:
            raise InvalidInputError("Give a config file (--config) or a run to resume (--resume).")
        config = dict(payload["config"])
    cfg = load_config(config, overrides)
    info = distributed.env_info()
    device = resolve_device(cfg["train"]["device"], info.local_rank)
    joined = info.enabled and not (torch.distributed.is_available() and torch.distributed.is_initialized())
    dist = distributed.init_distributed(device)
    try:
        return _train(cfg, payload, device, dist, verbose)
    finally:
        if joined:
            distributed.shutdown()


def _rank0_only(model: torch.nn.Module) -> Dict[str, float]:
    raise AssertionError("evaluation runs on rank 0 only")


def _train(cfg: Dict[str, Any], payload: Optional[Mapping[str, Any]], device: torch.device,
           dist: distributed.DistInfo, verbose: bool) -> TrainResult:
    tcfg = cfg["train"]
    if tcfg["threads"] > 0:
        torch.set_num_threads(tcfg["threads"])
    set_deterministic(tcfg["deterministic"])
    run_dir = Path(distributed.broadcast_object(str(_run_dir(cfg, payload))))

    dataset, loader = build_data(cfg, dist, verbose=verbose)
    seed_everything(tcfg["seed"])
    model = build_model_from_config(cfg, dataset.num_train_pids)
    composer = build_composer(cfg).to(device)
    composer.train()
    optimizer = build_optimizer(model.to(device), cfg["optim"])
    evaluate: Optional[Callable[[torch.nn.Module], Dict[str, float]]] = None
    if cfg["eval"]["enabled"]:
        evaluate = build_evaluate(cfg, dataset) if dist.is_main else _rank0_only
    callbacks = [composer.on_epoch_end] if hasattr(composer, "on_epoch_end") else []
    trainer = Trainer(
        model, optimizer, composer, loader, cfg, run_dir, model.meta(dataset.name), device, dist,
        hooks=default_hooks(evaluate, tcfg, callbacks), find_unused_parameters=tcfg["find_unused_parameters"],
    )
    if payload is not None:
        try:
            trainer.load_training_state(payload)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise InvalidInputError(
                f"Checkpoint {payload['_path']} does not match this config ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]})."
            ) from None
        if dist.is_main and verbose:
            trainer.print(f"Resuming {payload['_path']} at epoch {trainer.state.epoch + 1}, "
                          f"batch {trainer.state.batch} of {trainer.iters_per_epoch}.")
    elif dist.is_main and verbose:
        trainer.print(f"Run folder: {run_dir}")
    if dist.is_main:  # only once everything (a resumed checkpoint included) was validated
        stale = remove_stale_temporaries(run_dir)
        if stale and verbose:
            trainer.print(f"Removed {len(stale)} temporary file(s) an interrupted run left in {run_dir}.")
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    state = trainer.train()

    chance = chance_rank1(dataset)
    best = run_dir / BEST
    checkpoint = best if best.is_file() else run_dir / LAST
    if dist.is_main and verbose:
        table = dict(state.metrics)
        if state.initial_metrics:
            table.update({f"untrained {k}": v for k, v in state.initial_metrics.items() if k in ("rank1", "mAP")})
        table["chance rank1"] = chance
        print(metrics_table(table, title=f"{cfg['name']} (epoch {state.epoch})"), file=sys.stdout)
        print(f"checkpoint: {checkpoint}", file=sys.stdout)
    return TrainResult(run_dir=run_dir, checkpoint=checkpoint, metrics=dict(state.metrics),
                       initial_metrics=dict(state.initial_metrics), history=list(trainer.runlog.rows),
                       chance_rank1=chance, model=trainer.module)
