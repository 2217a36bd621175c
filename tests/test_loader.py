"""Image reading, unreadable-image skipping and the train / test loaders on real files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
import torch

from edge_reid.data import ImageRecord
from edge_reid.data.loader import ImageDataset, build_test_loader, build_train_loader, read_image
from edge_reid.data.transforms import build_test_transform
from edge_reid.errors import InvalidInputError

SIZE = (16, 8)


def write_records(folder: Path, num_ids: int = 6, per_id: int = 4) -> List[ImageRecord]:
    """Small JPEGs whose red channel encodes the person id (to check what a batch holds)."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for pid in range(num_ids):
        for shot in range(per_id):
            path = folder / f"{pid:04d}_c{shot % 2 + 1}s1_{shot:06d}_00.png"
            image = np.zeros((20, 10, 3), np.uint8)
            image[..., 2] = 40 * pid  # BGR on disk: red = 40 * pid
            cv2.imwrite(str(path), image)
            records.append(ImageRecord(str(path), pid, shot % 2))
    return records


def test_read_image_is_rgb_and_errors_are_clear(tmp_path: Path) -> None:
    bgr = np.zeros((5, 7, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    rgb = read_image(tmp_path / "blue.png")
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    assert int(rgb[0, 0, 2]) == 200 and int(rgb[0, 0, 0]) == 0
    with pytest.raises(InvalidInputError, match="Cannot read the image"):
        read_image(tmp_path / "missing.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InvalidInputError, match="corrupt"):
        read_image(tmp_path / "bad.jpg")


def test_unreadable_image_is_skipped_with_a_warning(tmp_path: Path) -> None:
    records = write_records(tmp_path, num_ids=2, per_id=3)
    Path(records[1].path).write_bytes(b"garbage")
    dataset = ImageDataset(records, build_test_transform(SIZE))
    with pytest.warns(RuntimeWarning, match=Path(records[1].path).name):
        image, pid, camid, index = dataset[1]
    assert index != 1 and pid == records[1].pid == records[index].pid  # same person replaces it
    assert image.shape == (3, *SIZE) and dataset.skipped == 1
    samples = [dataset[i] for i in range(len(dataset))]  # a known bad file is not read again
    assert dataset.skipped == 1 and [s[3] for s in samples].count(1) == 0


def test_all_unreadable_is_a_clear_error(tmp_path: Path) -> None:
    records = write_records(tmp_path, num_ids=1, per_id=2)
    for record in records:
        Path(record.path).write_bytes(b"")
    dataset = ImageDataset(records, build_test_transform(SIZE))
    with pytest.warns(RuntimeWarning):
        with pytest.raises(InvalidInputError, match="None of the 2 images could be read"):
            dataset[0]


def test_train_loader_pk_batches(tmp_path: Path) -> None:
    records = write_records(tmp_path)
    loader = build_train_loader(records, SIZE, p=3, k=2, seed=0, workers=0, augment={"erasing_p": 0.0, "color_jitter": None, "pad": 2})
    batches = list(loader)
    assert len(batches) == len(loader) == loader.sampler.num_batches
    for images, pids, camids, indices in batches:
        assert images.shape == (6, 3, *SIZE) and images.dtype == torch.float32
        counts = Counter(pids.tolist())
        assert len(counts) == 3 and set(counts.values()) == {2}
        assert [records[i].pid for i in indices.tolist()] == pids.tolist()
        # the red channel still carries the id: no normalisation, flips/pads keep the colour
        red = images[:, 0].amax(dim=(1, 2))
        assert torch.allclose(red, pids.float() * 40 / 255, atol=2 / 255)
    with pytest.raises(InvalidInputError, match="Unknown augmentation option"):
        build_train_loader(records, SIZE, p=3, k=2, seed=0, workers=0, augment={"flip": 1})


def test_train_loader_worker_seeding_is_deterministic(tmp_path: Path) -> None:
    records = write_records(tmp_path)
    first = build_train_loader(records, SIZE, p=2, k=2, seed=11, workers=1)
    second = build_train_loader(records, SIZE, p=2, k=2, seed=11, workers=1)
    a = [b[0] for b in first]
    b = [b[0] for b in second]
    assert len(a) == first.sampler.num_batches and all(torch.equal(x, y) for x, y in zip(a, b))
    again = [b[0] for b in first]  # the same epoch again: the same augmentations
    assert all(torch.equal(x, y) for x, y in zip(a, again))
    first.set_epoch(1)
    assert not all(torch.equal(x, y[0]) for x, y in zip(a, first))


def test_test_loader_keeps_order(tmp_path: Path) -> None:
    records = write_records(tmp_path, num_ids=3, per_id=3)
    loader = build_test_loader(records, SIZE, batch_size=4, workers=0)
    indices, pids = [], []
    for images, pid, camid, index in loader:
        assert images.shape[1:] == (3, *SIZE)
        indices += index.tolist()
        pids += pid.tolist()
    assert indices == list(range(len(records))) and pids == [r.pid for r in records]


def test_pre_transform_gets_image_and_path(tmp_path: Path) -> None:
    records = write_records(tmp_path, num_ids=1, per_id=2)
    seen = []

    def invert(image: np.ndarray, path: str) -> np.ndarray:
        seen.append(path)
        return 255 - image

    plain = ImageDataset(records, build_test_transform(SIZE))[1][0]
    inverted = ImageDataset(records, build_test_transform(SIZE), pre_transform=invert)[1][0]
    assert seen == [records[1].path] and torch.allclose(inverted, 1.0 - plain)


def test_test_loader_drops_unreadable_images_instead_of_replacing_them(tmp_path: Path) -> None:
    records = write_records(tmp_path, num_ids=3, per_id=2)
    for i in (1, 4, 5):  # record 1, and the whole last batch (4, 5) of size 2
        Path(records[i].path).write_bytes(b"truncated")
    loader = build_test_loader(records, SIZE, batch_size=2, workers=0)
    with pytest.warns(RuntimeWarning, match="unreadable"):
        batches = list(loader)
    assert batches[2] is None  # every image of that batch was unreadable
    kept = torch.cat([b[3] for b in batches if b is not None]).tolist()
    pids = torch.cat([b[1] for b in batches if b is not None]).tolist()
    assert kept == [0, 2, 3] and pids == [records[i].pid for i in kept]
    assert loader.dataset.skipped == 3
