"""PK sampler: batch composition, determinism in (seed, epoch), resume, distributed shards."""

from __future__ import annotations

from collections import Counter
from typing import List

import pytest

from edge_reid.data.sampler import DistributedPKSampler, PKSampler
from edge_reid.errors import InvalidInputError


def make_pids() -> List[int]:
    """20 ids with 1..12 images each (some below K, some with several K-chunks)."""
    pids = []
    for pid in range(20):
        pids += [pid] * (1 + (pid * 5) % 12)
    return pids


def batches_of(sampler: PKSampler) -> List[List[int]]:
    flat = list(sampler)
    size = sampler.p * sampler.k
    assert len(flat) == len(sampler) and len(flat) % size == 0
    return [flat[i:i + size] for i in range(0, len(flat), size)]


def test_every_batch_has_p_ids_k_times() -> None:
    pids = make_pids()
    sampler = PKSampler(pids, p=4, k=3, seed=1)
    batches = batches_of(sampler)
    assert len(batches) == sampler.num_batches > 0
    for batch in batches:
        counts = Counter(pids[i] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {3}
    # identities with many images contribute several chunks: more batches than ids / P
    assert sampler.num_batches > len(set(pids)) // 4
    # distinct images of a large identity are not repeated inside a batch
    big = [i for i, pid in enumerate(pids) if pid == 9]  # 10 images
    for batch in batches:
        chosen = [i for i in batch if i in big]
        assert len(chosen) == len(set(chosen))


def test_deterministic_for_seed_and_epoch() -> None:
    pids = make_pids()
    a, b = PKSampler(pids, 4, 3, seed=7), PKSampler(pids, 4, 3, seed=7)
    assert list(a) == list(b)
    assert list(a) != list(PKSampler(pids, 4, 3, seed=8))
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first and len(second) == len(first)  # same length every epoch
    a.set_epoch(0)
    assert list(a) == first


def test_resume_skips_consumed_batches() -> None:
    pids = make_pids()
    sampler = PKSampler(pids, 4, 3, seed=3)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start_batch=3)
    assert list(sampler) == full[3 * 12:]
    assert len(sampler) == len(full) - 3 * 12
    with pytest.raises(InvalidInputError, match="start_batch"):
        sampler.set_epoch(0, start_batch=sampler.num_batches + 1)


def test_small_identities_sampled_with_replacement() -> None:
    pids = [0] * 1 + [1] * 2 + [2] * 5
    sampler = PKSampler(pids, p=3, k=4, seed=0)
    for batch in batches_of(sampler):
        counts = Counter(pids[i] for i in batch)
        assert counts == {0: 4, 1: 4, 2: 4}
        assert [i for i in batch if pids[i] == 0] == [0, 0, 0, 0]


def test_too_few_identities_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="at least P=8 identities but the training set has 2"):
        PKSampler([0, 0, 1, 1], p=8, k=2)


def test_distributed_shards_disjoint_and_equal() -> None:
    pids = make_pids()
    world = 3
    single = PKSampler(pids, 4, 3, seed=5)
    single.set_epoch(4)
    reference = batches_of(single)
    shards = []
    for rank in range(world):
        sampler = DistributedPKSampler(pids, 4, 3, seed=5, num_replicas=world, rank=rank)
        sampler.set_epoch(4)
        shards.append(batches_of(sampler))
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == single.num_batches // world
    positions = [[reference.index(b) for b in shard] for shard in shards]
    for rank, pos in enumerate(positions):
        assert pos == list(range(rank, world * len(shards[0]), world))
    flat = sorted(p for pos in positions for p in pos)
    assert flat == sorted(set(flat))  # no batch given to two ranks
    with pytest.raises(InvalidInputError, match="rank must be"):
        DistributedPKSampler(pids, 4, 3, num_replicas=2, rank=2)
