"""The one training loop for every model and loss combination.

The :class:`Trainer` knows nothing about particular losses: the ``LossComposer`` turns the
model's output dict into a total and named terms. Everything around the step (learning rate,
evaluation, logging, checkpoints, epoch-end callbacks) is a :mod:`hook <edge_reid.engine.hooks>`.

Determinism: every epoch starts by re-seeding all generators from (seed, epoch) and telling
the sampler its epoch, so an epoch is a pure function of the state at its start. A run
resumed mid-epoch replays the data loader over the batches already consumed (discarding
them, so data-side randomness advances exactly as before) and then restores the RNG
states saved in the checkpoint.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import torch
from torch import nn
from tqdm import tqdm

from edge_reid.engine import distributed
from edge_reid.engine.batch_inputs import batch_extra_inputs, takes_camera_ids
from edge_reid.engine.config import plain
from edge_reid.engine.distributed import DistInfo
from edge_reid.engine.guard import NonFiniteLossError, all_finite, loss_problem, nonfinite_weights, skip_bad_step
from edge_reid.engine.hooks import Hook
from edge_reid.engine.optim import EpochSchedule
from edge_reid.engine.progress import EpochStats, TrainState
from edge_reid.engine.rng import capture_rng_state, epoch_seed, restore_rng_state, seed_everything
from edge_reid.engine.runlog import RunLog
from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.models.checkpoint import check_state_matches


class Trainer:
    """Runs epochs of PK-sampled batches through model -> composer -> optimizer, calling hooks."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        composer: Any,
        loader: Iterable,
        cfg: Mapping[str, Any],
        run_dir: Path,
        meta: ModelMeta,
        device: torch.device,
        dist: DistInfo = DistInfo(),
        hooks: Sequence[Hook] = (),
        find_unused_parameters: bool = False,
    ) -> None:
        self.cfg = cfg
        tcfg = cfg["train"]
        self.module = model.to(device)
        self.device = device
        self.dist = dist
        self.model: nn.Module = self.module
        if dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(
                self.module, device_ids=ids, find_unused_parameters=find_unused_parameters
            )
        self.optimizer = optimizer
        self.composer = composer
        self.loader = loader
        self.run_dir = Path(run_dir)
        self.meta = meta
        self.hooks: List[Hook] = list(hooks)
        self.epochs = int(tcfg["epochs"])
        self.seed = int(tcfg["seed"])
        self.base_lr = float(cfg["optim"]["lr"])
        self.schedule = EpochSchedule(cfg["schedule"], self.epochs)
        self.grad_clip: Optional[float] = tcfg["grad_clip"]
        self.max_nonfinite = int(tcfg["max_nonfinite"])
        self.divergence_factor = float(tcfg["divergence_factor"])
        self.log_every = max(1, int(tcfg["log_every"]))
        self.iters_per_epoch = self._epoch_length(loader, int(tcfg["iters_per_epoch"]))
        self.amp_dtype = self._amp_dtype(tcfg["amp"], device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.state = TrainState()
        self.epoch_row: Dict[str, Any] = {}
        self.runlog = RunLog(self.run_dir, enabled=dist.is_main, tensorboard=cfg["output"]["tensorboard"])
        self._resume_rng: Optional[Dict[str, Any]] = None
        self.epoch_stats = EpochStats()
        from edge_reid.data.pedmix import PedMix, parse_pedmix

        pedmix_cfg = parse_pedmix(cfg["data"].get("pedmix"))
        self.pedmix = PedMix(pedmix_cfg) if pedmix_cfg is not None else None

    # ------------------------------------------------------------------ set-up helpers
    @staticmethod
    def _epoch_length(loader: Iterable, limit: int) -> int:
        try:
            length = len(loader)  # type: ignore[arg-type]
        except TypeError:
            length = 0
        if limit > 0:
            if length and limit > length:
                raise InvalidInputError(
                    f"Config key 'train.iters_per_epoch' is {limit} but one pass of the PK sampler gives only "
                    f"{length} batches; set it to at most {length} (or 0 for a full pass)."
                )
            return limit
        if not length:
            raise EdgeReidError("The training loader has no length; set train.iters_per_epoch.")
        return length

    @staticmethod
    def _amp_dtype(amp: str, device: torch.device) -> Optional[torch.dtype]:
        if amp == "none":
            return None
        if device.type != "cuda":
            warnings.warn(f"train.amp={amp} needs a CUDA GPU; training in float32 on {device.type}.", stacklevel=3)
            return None
        return torch.bfloat16 if amp == "bf16" else torch.float16

    def print(self, text: str) -> None:
        """Print on the main process only, without breaking the progress bar."""
        if self.dist.is_main:
            tqdm.write(text, file=sys.stderr)

    # ------------------------------------------------------------------ state
    def training_state(self) -> Dict[str, Any]:
        """Everything a checkpoint needs beyond the weights (tensors, numbers, strings, lists, dicts)."""
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": {**self.schedule.state_dict(), "last_epoch": self.state.epoch, "lr": self.state.lr},
            "composer": self.composer.state_dict() if hasattr(self.composer, "state_dict") else {},
            "epoch": self.state.epoch,
            "batch": self.state.batch,
            "global_step": self.state.global_step,
            "rng": capture_rng_state(),
            "config": plain(self.cfg),
            "history": plain(self.runlog.rows),
            "trainer": plain({k: v for k, v in asdict(self.state).items() if k not in ("epoch", "batch", "global_step")}),
            "epoch_accum": plain(self.epoch_stats.sums),
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_training_state(self, payload: Mapping[str, Any]) -> None:
        """Continue from a checkpoint written by :meth:`training_state` (weights included)."""
        saved_model = dict(payload.get("meta") or {}).get("model")
        if saved_model is not None and saved_model != self.meta.model:
            raise EdgeReidError(f"Checkpoint {payload.get('_path', '')} holds model '{saved_model}' but this config "
                                f"builds '{self.meta.model}'; resume with the run's own config.")
        check_state_matches(self.module, payload.get("model"), f"Checkpoint {payload.get('_path', '')}".rstrip(),
                            f"model '{self.meta.model}' ({self.meta.num_ids} ids) of this config")
        self.module.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        if payload.get("composer") and hasattr(self.composer, "load_state_dict"):
            self.composer.load_state_dict(payload["composer"])
        if self.scaler is not None and "scaler" in payload:
            self.scaler.load_state_dict(payload["scaler"])
        for key, value in dict(payload.get("trainer", {})).items():
            if hasattr(self.state, key):
                setattr(self.state, key, value)
        self.state.epoch = int(payload["epoch"])
        self.state.batch = int(payload["batch"])
        self.state.global_step = int(payload["global_step"])
        self.state.evaluated_now = False
        self.runlog.restore(payload.get("history", []))
        if self.state.batch > 0:
            self._resume_rng = payload["rng"]
            self.epoch_stats = EpochStats(payload.get("epoch_accum"))

    # ------------------------------------------------------------------ loop
    def train(self) -> TrainState:
        """Run the remaining epochs; returns the final state (metrics of the last evaluation)."""
        self._call("before_train")
        while self.state.epoch < self.epochs:
            self.run_epoch()
        self._call("after_train")
        return self.state

    def _call(self, point: str) -> None:
        for hook in self.hooks:
            getattr(hook, point)(self)

    def _set_sampler_epoch(self, epoch: int) -> None:
        for name in ("batch_sampler", "sampler"):
            sampler = getattr(self.loader, name, None)
            if sampler is not None and hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)

    def run_epoch(self) -> None:
        """One epoch (or its remainder after a mid-epoch resume)."""
        epoch = self.state.epoch
        self.state.evaluated_now = False
        self._call("before_epoch")
        self._set_sampler_epoch(epoch)
        seed_everything(epoch_seed(self.seed, epoch))
        start = self.state.batch
        iterator = iter(self.loader)
        if start > 0:
            for _ in range(start):  # replay consumed batches so the loader's randomness lines up
                next(iterator)
            if self._resume_rng is not None:
                restore_rng_state(self._resume_rng)
                self._resume_rng = None
        else:
            self.epoch_stats = EpochStats()
        self.model.train()
        bar = tqdm(total=self.iters_per_epoch, initial=start, desc=f"epoch {epoch + 1}/{self.epochs}",
                   disable=not self.dist.is_main, dynamic_ncols=True, mininterval=1.0, leave=False, file=sys.stderr)
        tick = time.perf_counter()
        try:
            for index in range(start, self.iters_per_epoch):
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                step_images = int(batch[0].shape[0]) * self.dist.world_size
                result = self.step(batch)
                self.state.batch = index + 1
                self.state.global_step += 1
                now = time.perf_counter()
                self.epoch_stats.add_time(now - tick, step_images)
                tick = now
                if result is not None:
                    self.epoch_stats.add_result(result)
                bar.update(1)
                if (index + 1) % self.log_every == 0 or index + 1 == self.iters_per_epoch:
                    bar.set_postfix_str(self.epoch_stats.postfix(self.state.lr), refresh=False)
                self._call("after_step")
                tick = time.perf_counter()  # checkpoint writes do not count as training time
        finally:
            bar.close()
            del iterator
        self.state.epoch = epoch + 1
        self.state.batch = 0
        self.epoch_row = self.epoch_stats.summary(self.state.epoch, self.state.lr, self.state.nonfinite_total)
        self._call("after_epoch")

    # ------------------------------------------------------------------ one step
    def step(self, batch: Sequence[Any]) -> Optional[Any]:
        """Forward, loss, backward, clip, update. A bad step (see :mod:`~edge_reid.engine.guard`) is
        skipped (no update, BatchNorm statistics restored); ``max_nonfinite`` in a row stop training,
        and so does an update that leaves a weight NaN or infinite."""
        images = batch[0].to(self.device, non_blocking=True)
        if self.pedmix is not None:  # TMPA's PedMix; its generator is seeded from (seed, global step)
            from edge_reid.data.pedmix import mix_training_batch

            images = mix_training_batch(self.pedmix, images, batch, getattr(self.loader, "dataset", None),
                                        self.seed, self.state.global_step)
        targets = batch[1].to(self.device, non_blocking=True)
        buffers = [b for b in self.module.buffers() if b.is_floating_point() or b.dtype == torch.long]
        saved = [b.detach().clone() for b in buffers]
        autocast = (torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
                    if self.amp_dtype is not None else contextlib.nullcontext())
        with autocast:
            outputs = self.model(images, **batch_extra_inputs(self.module, batch, getattr(self.loader, "dataset", None),
                                                              self.device))
            result = self.composer(outputs, targets)
        total = result.total.float()
        problem = loss_problem(float(total.detach()), self.state.loss_baseline, self.divergence_factor)
        self.optimizer.zero_grad(set_to_none=True)
        if problem is None:
            if self.scaler is not None:
                self.scaler.scale(total).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                total.backward()
                if not all_finite(p.grad for p in self.module.parameters()):
                    problem = "finite, but its gradients NaN or infinite"
        if distributed.all_reduce_sum(0.0 if problem is None else 1.0, self.device) > 0:  # all ranks skip together
            return skip_bad_step(self, buffers, saved, problem or "bad on another rank")
        self._clip()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        broken = nonfinite_weights(self.module)
        if broken:
            raise NonFiniteLossError(
                f"Training stopped: the update at epoch {self.state.epoch + 1}, batch {self.state.batch + 1} made "
                f"{len(broken)} weight tensor(s) NaN or infinite (first: {broken[0]}; optim.lr={self.base_lr:g}); "
                f"nothing was saved from them, lower optim.lr or set train.grad_clip."
            )
        if self.state.loss_baseline <= 0.0:
            self.state.loss_baseline = float(total.detach())
        self.state.nonfinite_streak = 0
        return result

    def _clip(self) -> None:
        if self.grad_clip is not None and self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.grad_clip)


__all__ = ["NonFiniteLossError", "TrainState", "Trainer", "takes_camera_ids"]
