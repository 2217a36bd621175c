"""PK sampling: every batch holds P distinct identities with K images each.

The order of an epoch is a pure function of ``(seed, epoch)``: the training engine calls
``set_epoch(epoch)`` before iterating, and can resume mid-epoch with
``set_epoch(epoch, start_batch=n)``, which skips the first ``n`` batches without loading them.

Per epoch (the RandomIdentitySampler scheme): each identity's images are shuffled and cut
into chunks of K (an identity with fewer than K images is drawn with replacement to one
chunk; a remainder shorter than K is dropped), so identities with many images contribute
several chunks. Batches take one chunk from each of P distinct identities drawn at random
among those with chunks left. The number of batches is fixed, ``total_chunks // P``; when
fewer than P identities still have chunks, the batch is completed with fresh chunks of other
identities, so every epoch has the same length.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Dict, Iterator, List, Sequence

import numpy as np
from torch.utils.data import Sampler

from edge_reid.errors import InvalidInputError


class PKSampler(Sampler[int]):
    """Indices of ``num_batches`` batches of P ids x K images, deterministic in (seed, epoch).

    Yields flat indices; use it with ``DataLoader(batch_size=p * k, drop_last=True)``.
    ``len()`` is the number of indices (``num_batches * p * k``, less the skipped batches).
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0) -> None:
        if p < 1 or k < 1:
            raise InvalidInputError(f"PK sampling needs p >= 1 and k >= 1, got p={p} and k={k}.")
        self.pids = [int(x) for x in pids]
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        index: Dict[int, List[int]] = defaultdict(list)
        for i, pid in enumerate(self.pids):
            index[pid].append(i)
        self.index = {pid: np.asarray(ids, dtype=np.int64) for pid, ids in sorted(index.items())}
        if len(self.index) < self.p:
            raise InvalidInputError(
                f"PK sampling needs at least P={self.p} identities but the training set has {len(self.index)}."
            )
        chunks = sum(max(1, len(ids) // self.k) for ids in self.index.values())
        self._num_batches = chunks // self.p
        self.epoch = 0
        self.start_batch = 0

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    @property
    def num_batches(self) -> int:
        """Batches in a whole epoch (the same for every epoch)."""
        return self._num_batches

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order; skip its first ``start_batch`` batches (to resume)."""
        if not 0 <= start_batch <= self.num_batches:
            raise InvalidInputError(f"start_batch must be in 0..{self.num_batches}, got {start_batch}.")
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def epoch_batches(self, epoch: int) -> List[List[int]]:
        """The batches (lists of P*K indices) of ``epoch``, computed from (seed, epoch) only."""
        return self._generate(epoch, self.num_batches)

    def _generate(self, epoch: int, count: int) -> List[List[int]]:
        """The first ``count`` batches of ``epoch`` (see the module docstring)."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        chunks: Dict[int, List[np.ndarray]] = {}
        for pid, ids in self.index.items():
            chunks[pid] = self._chunks(ids, rng)
        pid_list = list(self.index)
        available = [pid for pid in pid_list if chunks[pid]]
        batches = []
        while len(batches) < count:
            if len(available) >= self.p:
                chosen = [available[i] for i in rng.choice(len(available), self.p, replace=False)]
            else:
                taken = set(available)
                others = [pid for pid in pid_list if pid not in taken]
                extra = [others[i] for i in rng.choice(len(others), self.p - len(available), replace=False)]
                for pid in extra:
                    chunks[pid] = self._chunks(self.index[pid], rng)[:1]
                chosen = list(available) + extra
            batch: List[int] = []
            for pid in chosen:
                batch.extend(int(i) for i in chunks[pid].pop())
                if not chunks[pid] and pid in available:
                    available.remove(pid)
            batches.append(batch)
        return batches

    def _chunks(self, ids: np.ndarray, rng: np.random.Generator) -> List[np.ndarray]:
        """The K-sized chunks of one identity's shuffled images (with replacement if < K)."""
        if len(ids) < self.k:
            ids = rng.choice(ids, self.k, replace=True)
        else:
            ids = rng.permutation(ids)
        return [ids[j * self.k:(j + 1) * self.k] for j in range(len(ids) // self.k)]

    def __iter__(self) -> Iterator[int]:
        for batch in self.epoch_batches(self.epoch)[self.start_batch:]:
            yield from batch

    def __len__(self) -> int:
        return (self.num_batches - self.start_batch) * self.batch_size


class DistributedPKSampler(PKSampler):
    """The PK batches of one epoch dealt round-robin to ``num_replicas`` ranks.

    Every rank computes the same epoch (same seed) and keeps batches ``rank``,
    ``rank + num_replicas``, ...; the tail is cut so that all ranks get the same count.
    ``num_batches`` and ``start_batch`` count this rank's batches.
    """

    def __init__(
        self, pids: Sequence[int], p: int, k: int, seed: int = 0, num_replicas: int = 1, rank: int = 0
    ) -> None:
        super().__init__(pids, p, k, seed)
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise InvalidInputError(f"rank must be in 0..{num_replicas - 1} for {num_replicas} replicas, got {rank}.")
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.total_batches = self._num_batches
        self._num_batches = self.total_batches // self.num_replicas
        if self._num_batches == 0:
            raise InvalidInputError(
                f"The training set gives {self.total_batches} PK batches, fewer than the {num_replicas} ranks."
            )

    def epoch_batches(self, epoch: int) -> List[List[int]]:
        """This rank's share of the epoch's batches."""
        every = self._generate(epoch, self.num_batches * self.num_replicas)
        return every[self.rank::self.num_replicas]


class ModalityPKSampler(PKSampler):
    """Visible-infrared PK batches: P ids x (K visible + K infrared images), in that order per id.

    Only identities with images of both modalities are drawn. An epoch has
    ``len(records) // (2 * P * K)`` batches; each picks P distinct ids at random and, per id, K
    visible and K infrared images (without replacement when there are enough, with otherwise).
    Deterministic in (seed, epoch) like :class:`PKSampler`, whose ``set_epoch`` it keeps.
    """

    def __init__(self, pids: Sequence[int], modalities: Sequence[int], p: int, k: int, seed: int = 0) -> None:
        if p < 1 or k < 1:
            raise InvalidInputError(f"PK sampling needs p >= 1 and k >= 1, got p={p} and k={k}.")
        if len(pids) != len(modalities):
            raise InvalidInputError(f"{len(pids)} pids were given with {len(modalities)} modalities.")
        self.pids = [int(x) for x in pids]
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        by_mod: Dict[int, Dict[int, List[int]]] = {0: defaultdict(list), 1: defaultdict(list)}
        for i, (pid, mod) in enumerate(zip(self.pids, modalities)):
            by_mod[1 if int(mod) == 1 else 0][pid].append(i)
        both = sorted(set(by_mod[0]) & set(by_mod[1]))
        if len(both) < self.p:
            raise InvalidInputError(
                f"Modality-balanced PK sampling needs P={self.p} identities with both visible and infrared "
                f"images, but the training set has {len(both)}."
            )
        self.visible = {pid: np.asarray(by_mod[0][pid], dtype=np.int64) for pid in both}
        self.infrared = {pid: np.asarray(by_mod[1][pid], dtype=np.int64) for pid in both}
        self.index = self.visible
        self._num_batches = max(1, len(self.pids) // (2 * self.p * self.k))
        self.epoch = 0
        self.start_batch = 0

    @property
    def batch_size(self) -> int:
        return 2 * self.p * self.k

    def _draw(self, ids: np.ndarray, rng: np.random.Generator) -> List[int]:
        return [int(i) for i in rng.choice(ids, self.k, replace=len(ids) < self.k)]

    def _generate(self, epoch: int, count: int) -> List[List[int]]:
        rng = np.random.default_rng([self.seed, int(epoch), 2])
        pid_list = list(self.visible)
        batches = []
        for _ in range(count):
            batch: List[int] = []
            for j in rng.choice(len(pid_list), self.p, replace=False):
                pid = pid_list[int(j)]
                batch += self._draw(self.visible[pid], rng) + self._draw(self.infrared[pid], rng)
            batches.append(batch)
        return batches
