"""Image reading and the train / test data loaders.

An unreadable or corrupt image never ends an epoch: :class:`ImageDataset` warns once
naming the file and counts it (``skipped``, shared by the loader's worker processes). For
training it returns another image instead, preferably of the same person so that a PK batch
keeps its composition. For evaluation (``substitute=False``, the test loaders) it is dropped,
never replaced: the sample is ``None`` and :func:`collate_readable` leaves it out of the batch,
so the evaluator sees which records are missing. Only when no image at all can be read is it
an error.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Union

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from edge_reid.data.datasets.base import ImageRecord, ReIDDataset
from edge_reid.data.sampler import DistributedPKSampler, ModalityPKSampler, PKSampler
from edge_reid.data.transforms import augment_options, build_test_transform, build_train_transform
from edge_reid.errors import InvalidInputError


def read_image(path: Union[str, "os.PathLike[str]"]) -> np.ndarray:
    """The image at ``path`` as an RGB uint8 H x W x 3 array; unreadable -> InvalidInputError."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise InvalidInputError(f"Cannot read the image {path} ({exc.strerror or exc}).") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InvalidInputError(f"The image {path} is empty, corrupt or not an image format OpenCV can decode.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageDataset(Dataset):
    """``records`` as ``(image, pid, camid, index)`` samples; unreadable images are replaced or dropped.

    ``index`` is the position of the record actually returned (a replacement's own index).
    With ``substitute=False`` an unreadable image gives ``None`` instead of a replacement.
    ``pre_transform(image, path) -> image`` (e.g. background augmentation, which needs the
    path to find the person mask) runs on the RGB uint8 image before ``transform``.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable[[np.ndarray, str], np.ndarray]] = None,
        substitute: bool = True,
    ) -> None:
        self.records = [ImageRecord(*r) for r in records]
        self.substitute = substitute
        if not self.records:
            raise InvalidInputError("The image dataset has no records to load.")
        self.transform = transform
        self.pre_transform = pre_transform
        self._skipped = multiprocessing.Value("i", 0)
        self._bad: Set[int] = set()
        self._by_pid: Optional[Dict[int, List[int]]] = None

    @property
    def skipped(self) -> int:
        """How many unreadable images were met so far, over all worker processes."""
        return int(self._skipped.value)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        for candidate in self._candidates(int(index)):
            if candidate in self._bad:
                continue
            record = self.records[candidate]
            try:
                image = read_image(record.path)
            except InvalidInputError as exc:
                self._mark_bad(candidate, exc)
                if not self.substitute:
                    return None
                continue
            if self.pre_transform is not None:
                image = self.pre_transform(image, record.path)
            if self.transform is not None:
                image = self.transform(image)
            return image, record.pid, record.camid, candidate
        raise InvalidInputError(
            f"None of the {len(self.records)} images could be read (first: {self.records[0].path})."
        )

    def _candidates(self, index: int):
        """``index`` alone without ``substitute``; else ``index``, then the other images of its person, then every other image, in order."""
        yield index
        if not self.substitute:
            return
        if self._by_pid is None:
            self._by_pid = {}
            for i, record in enumerate(self.records):
                self._by_pid.setdefault(record.pid, []).append(i)
        same = self._by_pid[self.records[index].pid]
        start = same.index(index)
        for i in same[start + 1:] + same[:start]:
            yield i
        n = len(self.records)
        for offset in range(1, n):
            i = (index + offset) % n
            if self.records[i].pid != self.records[index].pid:
                yield i

    def _mark_bad(self, index: int, exc: InvalidInputError) -> None:
        self._bad.add(index)
        with self._skipped.get_lock():
            self._skipped.value += 1
        warnings.warn(f"Skipping an unreadable image: {exc}", RuntimeWarning, stacklevel=3)


def collate_readable(samples: Sequence[Any]) -> Any:
    """Default collation of the samples that are not ``None`` (unreadable); ``None`` when none is left."""
    kept = [s for s in samples if s is not None]
    return default_collate(kept) if kept else None


def seed_worker(worker_id: int) -> None:
    """Seed numpy and ``random`` in a loader worker from its torch seed (set by the loader).

    A ``pre_transform`` with its own numpy generator (``rng`` attribute) gets a fresh one
    from the same seed, so forked workers do not repeat each other's draws.
    """
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
    info = torch.utils.data.get_worker_info()
    pre = getattr(info.dataset, "pre_transform", None) if info is not None else None
    if pre is not None and isinstance(getattr(pre, "rng", None), np.random.Generator):
        pre.rng = np.random.default_rng(seed)


class TrainLoader(DataLoader):
    """A DataLoader whose worker seeds follow the sampler's (seed, epoch).

    Before each iteration the generator that seeds the workers is reset from the sampler's
    seed and epoch, so ``loader.sampler.set_epoch(e)`` (or ``loader.set_epoch(e)``) alone fixes
    both the batch order and the augmentations of epoch ``e`` (for a given worker count).
    """

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.sampler.set_epoch(epoch, start_batch)

    def __iter__(self):
        sampler = self.sampler
        seed = zlib.crc32(f"{sampler.seed}:{sampler.epoch}:{sampler.start_batch}".encode())
        self.generator.manual_seed(seed)
        pre = getattr(self.dataset, "pre_transform", None)
        if self.num_workers == 0 and isinstance(getattr(pre, "rng", None), np.random.Generator):
            pre.rng = np.random.default_rng(seed)  # in-process: the epoch alone fixes its draws (workers: seed_worker)
        return super().__iter__()


def build_train_loader(
    dataset: Union[ReIDDataset, Sequence[ImageRecord]],
    input_size: Sequence[int],
    p: int,
    k: int,
    seed: int,
    workers: int = 2,
    augment: Optional[dict] = None,
    distributed: bool = False,
    transform: Optional[Callable] = None,
    pre_transform: Optional[Callable[[np.ndarray, str], np.ndarray]] = None,
    modality_balanced: bool = False,
    with_masks: bool = False,
) -> TrainLoader:
    """PK-sampled training batches of ``dataset.train`` (or a list of records).

    ``augment`` holds :func:`build_train_transform` options and, under ``background``, the
    semantic-aware background augmentation (:func:`~edge_reid.data.background_aug.build_background_augment`),
    which becomes the ``pre_transform`` unless one is given; ``transform`` replaces the
    whole training transform; ``pre_transform(image, path)`` runs before it. With ``distributed`` the batches are split across the
    ranks of the initialised ``torch.distributed`` group.
    ``modality_balanced`` samples P ids x (K visible + K infrared) per batch
    (:class:`ModalityPKSampler`; not distributed). ``with_masks`` adds each image's stored person mask as a
    fifth batch column (:mod:`edge_reid.data.pedmix_masks`; needs a dataset with a ``root``).
    """
    records = dataset.train if isinstance(dataset, ReIDDataset) else list(dataset)
    if transform is None:
        transform = build_train_transform(input_size, **augment_options(augment))
    background = dict(augment or {}).get("background")
    if pre_transform is None and background is not None:
        from edge_reid.data.background_aug import build_background_augment

        pre_transform = build_background_augment(background, seed=seed)
    pids = [r.pid for r in records]
    if modality_balanced:
        if distributed:
            raise InvalidInputError("Modality-balanced PK sampling does not run distributed; train on one process.")
        sampler: PKSampler = ModalityPKSampler(pids, [r.modality for r in records], p, k, seed)
    elif distributed:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise InvalidInputError("distributed=True needs an initialised torch.distributed process group.")
        sampler = DistributedPKSampler(pids, p, k, seed, dist.get_world_size(), dist.get_rank())
    else:
        sampler = PKSampler(pids, p, k, seed)
    if with_masks:
        from edge_reid.data.pedmix_masks import MaskedImageDataset

        if not isinstance(dataset, ReIDDataset):
            raise InvalidInputError("Training with person masks needs a dataset (its root locates the masks).")
        images: ImageDataset = MaskedImageDataset(records, transform, dataset.root, pre_transform)
    else:
        images = ImageDataset(records, transform, pre_transform)
    return TrainLoader(
        images,
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=True,
        worker_init_fn=seed_worker,
        generator=torch.Generator(),
        pin_memory=torch.cuda.is_available(),
    )


def build_test_loader(
    records: Sequence[ImageRecord], input_size: Sequence[int], batch_size: int = 64, workers: int = 2
) -> DataLoader:
    """Batches of ``records`` in their order (no shuffle, no drop), test transform only.

    An unreadable image is left out of its batch (never replaced by another image); a batch of
    only unreadable images is ``None``. The ``index`` column tells which records were kept.
    """
    return DataLoader(
        ImageDataset(records, build_test_transform(input_size), substitute=False),
        batch_size=batch_size,
        shuffle=False,
        drop_last=False,
        collate_fn=collate_readable,
        num_workers=workers,
        worker_init_fn=seed_worker,
        pin_memory=torch.cuda.is_available(),
    )


def model_inputs(names: Sequence[str], batch: Sequence[torch.Tensor], dataset: object) -> Dict[str, torch.Tensor]:
    """The extra keyword inputs a model declares (``extra_inputs``) for one loader batch.

    ``modality`` comes from the records of ``dataset`` (an :class:`ImageDataset`) at the batch's
    indices, ``camera_ids`` from the batch's camera ids.
    """
    out: Dict[str, torch.Tensor] = {}
    for name in names:
        if name == "modality":
            records = getattr(dataset, "records", None)
            if records is None:
                raise InvalidInputError("This model needs each image's modality, but its loader has no records.")
            out[name] = torch.as_tensor([int(records[int(i)].modality) for i in batch[3]], dtype=torch.int64)
        elif name == "camera_ids":
            out[name] = torch.as_tensor(batch[2], dtype=torch.int64)
        else:
            raise InvalidInputError(f"The model input '{name}' is not one the data loaders can provide.")
    return out
