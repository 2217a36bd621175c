"""Trainer hooks: each one does one job at fixed points of the loop.

Points: ``before_train``, ``before_epoch``, ``after_step``, ``after_epoch``, ``after_train``.
The default order at an epoch end is: epoch-end callbacks (``composer.on_epoch_end`` for
IBB), evaluation, logging, checkpointing, so a checkpoint always holds the epoch's metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from edge_reid.engine import distributed
from edge_reid.engine.checkpointing import BEST, LAST, save_training_checkpoint
from edge_reid.engine.guard import refuse_nonfinite_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from edge_reid.engine.trainer import Trainer

Metrics = Dict[str, float]


class Hook:
    """Base class: override the points you need; every method receives the trainer."""

    def before_train(self, trainer: "Trainer") -> None:
        pass

    def before_epoch(self, trainer: "Trainer") -> None:
        pass

    def after_step(self, trainer: "Trainer") -> None:
        pass

    def after_epoch(self, trainer: "Trainer") -> None:
        pass

    def after_train(self, trainer: "Trainer") -> None:
        pass


class LRScheduleHook(Hook):
    """Sets the learning rate of the epoch about to run (warm-up, then step or cosine)."""

    def before_epoch(self, trainer: "Trainer") -> None:
        trainer.state.lr = trainer.schedule.apply(trainer.optimizer, trainer.base_lr, trainer.state.epoch)


class LossInitHook(Hook):
    """Before a fresh run, one no-grad pass of the initial network over the training loader for
    the loss terms that start from it (IBB's centroids, beta and Q); logs what they report.

    The pass runs in training mode (the statistics the loss will see) with BatchNorm buffers
    restored afterwards, and at most ``max_batches`` batches (0: one epoch).
    """

    def __init__(self, max_batches: int = 0) -> None:
        self.max_batches = int(max_batches)

    def before_train(self, trainer: "Trainer") -> None:
        composer = trainer.composer
        keys = composer.initial_pass_outputs() if hasattr(composer, "initial_pass_outputs") else []
        if not keys or trainer.state.epoch > 0 or trainer.state.batch > 0:
            return
        import torch

        from edge_reid.losses.registry import check_outputs

        model = trainer.module
        buffers = [b for b in model.buffers()]
        saved = [b.detach().clone() for b in buffers]
        limit = trainer.iters_per_epoch if self.max_batches <= 0 else min(self.max_batches, trainer.iters_per_epoch)
        collected: Dict[str, List[Any]] = {k: [] for k in keys}
        labels: List[Any] = []
        was_training = model.training
        model.train()
        try:
            with torch.no_grad():
                for index, batch in enumerate(trainer.loader):
                    if index >= limit:
                        break
                    outputs = model(batch[0].to(trainer.device))
                    check_outputs(outputs, tuple(keys), "initial pass")
                    for k in keys:
                        collected[k].append(outputs[k].detach().float())
                    labels.append(batch[1].to(trainer.device))
        finally:
            model.train(was_training)
            with torch.no_grad():
                for buf, old in zip(buffers, saved):
                    buf.copy_(old)
        stats = composer.initialise({k: torch.cat(v) for k, v in collected.items()}, torch.cat(labels))
        before = next((r for r in trainer.runlog.rows if r.get("epoch") == 0), {})  # the eval-at-start row
        row = {**before, "epoch": 0,
               **{f"{name}.init.{k}": v for name, term in stats.items() for k, v in term.items()}}
        trainer.runlog.add(row)
        trainer.print("loss initialised from the initial network | " + _summary_line(row))


class LossStatsHook(Hook):
    """Adds the loss terms' epoch statistics (IBB and the IB-loss estimate, the paper's Table V
    columns, and the assignments' entropies) to the epoch's log row."""

    def after_epoch(self, trainer: "Trainer") -> None:
        stats = getattr(trainer.composer, "epoch_stats", None)
        if callable(stats):
            trainer.epoch_row.update({f"stats.{k}": v for k, v in stats().items()})


class EpochEndCallbackHook(Hook):
    """Calls ``callback(epoch)`` for each callback after an epoch (``composer.on_epoch_end`` for IBB)."""

    def __init__(self, callbacks: Sequence[Callable[[int], Any]]) -> None:
        self.callbacks = list(callbacks)

    def after_epoch(self, trainer: "Trainer") -> None:
        for callback in self.callbacks:
            callback(trainer.state.epoch - 1)


class EvalHook(Hook):
    """Evaluates every ``every`` epochs (0: only after the last) and after the last epoch.

    ``evaluate(model) -> metrics in percent`` runs on the main process only, on the plain
    (unwrapped) model in eval mode; the metrics are shared with every rank.
    """

    def __init__(self, evaluate: Callable[[Any], Metrics], every: int, at_start: bool = False) -> None:
        self.evaluate = evaluate
        self.every = every
        self.at_start = at_start

    def _run(self, trainer: "Trainer") -> Metrics:
        metrics: Optional[Metrics] = None
        if trainer.dist.is_main:
            model = trainer.module
            was_training = model.training
            model.eval()
            try:
                metrics = {k: float(v) for k, v in self.evaluate(model).items()}
            finally:
                model.train(was_training)
        metrics = distributed.broadcast_object(metrics)
        return dict(metrics or {})

    def before_train(self, trainer: "Trainer") -> None:
        if self.at_start and trainer.state.epoch == 0 and trainer.state.batch == 0:
            trainer.state.initial_metrics = self._run(trainer)
            row = {"epoch": 0, **{f"eval.{k}": v for k, v in trainer.state.initial_metrics.items()}}
            trainer.runlog.add(row)
            trainer.print("before training | " + _summary_line(row))

    def after_epoch(self, trainer: "Trainer") -> None:
        epoch = trainer.state.epoch  # epochs completed
        last = epoch >= trainer.epochs
        if last or (self.every > 0 and epoch % self.every == 0):
            metrics = self._run(trainer)
            trainer.state.metrics = metrics
            trainer.state.evaluated_now = True
            trainer.epoch_row.update({f"eval.{k}": v for k, v in metrics.items()})


class LoggingHook(Hook):
    """Appends the epoch's row (losses, weights, lr, images/s, time, metrics) to the run logs."""

    def after_epoch(self, trainer: "Trainer") -> None:
        trainer.runlog.add(trainer.epoch_row)
        if trainer.dist.is_main:
            trainer.print(_summary_line(trainer.epoch_row))

    def after_train(self, trainer: "Trainer") -> None:
        trainer.runlog.close()


def _summary_line(row: Dict[str, Any]) -> str:
    parts = [f"epoch {row['epoch']}"]
    for key, value in row.items():
        if key == "epoch" or not isinstance(value, (int, float)):
            continue
        parts.append(f"{key} {value:.4g}")
    return " | ".join(parts)


class CheckpointHook(Hook):
    """Writes ``last.pth`` every ``every_epochs`` epochs and every ``every_iters`` steps, and
    ``best.pth`` whenever an evaluation sets a new best mAP (main process only)."""

    def __init__(self, every_epochs: int, every_iters: int = 0) -> None:
        self.every_epochs = max(1, every_epochs)
        self.every_iters = every_iters

    def _save(self, trainer: "Trainer", name: str) -> Path:
        path = trainer.run_dir / name
        refuse_nonfinite_checkpoint(trainer.module, str(path))
        save_training_checkpoint(path, trainer.module, trainer.meta, trainer.training_state())
        return path

    def after_step(self, trainer: "Trainer") -> None:
        if not trainer.dist.is_main or self.every_iters <= 0:
            return
        if trainer.state.global_step % self.every_iters == 0 and trainer.state.batch < trainer.iters_per_epoch:
            self._save(trainer, LAST)

    def after_epoch(self, trainer: "Trainer") -> None:
        if not trainer.dist.is_main:
            return
        epoch = trainer.state.epoch
        metrics = trainer.state.metrics
        new_best = trainer.state.evaluated_now and "mAP" in metrics and metrics["mAP"] > trainer.state.best_map
        if new_best:  # recorded before last.pth is written, so a resumed run knows it
            trainer.state.best_map = metrics["mAP"]
            trainer.state.best_epoch = epoch
        if epoch % self.every_epochs == 0 or epoch >= trainer.epochs:
            self._save(trainer, LAST)
        if new_best:
            self._save(trainer, BEST)


def default_hooks(evaluate: Optional[Callable[[Any], Metrics]], train_cfg: Dict[str, Any],
                  epoch_end_callbacks: Sequence[Callable[[int], Any]] = ()) -> List[Hook]:
    """The standard hook list for a config's ``train`` section."""
    hooks: List[Hook] = [LRScheduleHook(), EpochEndCallbackHook(epoch_end_callbacks), LossStatsHook()]
    if evaluate is not None:
        hooks.append(EvalHook(evaluate, train_cfg["eval_every"], train_cfg.get("eval_at_start", False)))
    hooks.append(LossInitHook(train_cfg.get("loss_init_batches", 0)))  # after the eval at start: merges its row
    hooks += [LoggingHook(), CheckpointHook(train_cfg["checkpoint_every"], train_cfg["checkpoint_iters"])]
    return hooks
