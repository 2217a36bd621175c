"""VisNet's semantic-aware background augmentation switched on from a training config: the loader
builds the pre-transform from ``data.augment.background`` and passes it every training image;
the semantic loss is plain cross-entropy by default (the paper's Eq. 11)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
import torch.nn.functional as F

from edge_reid.data import build_dataset
from edge_reid.data.background_aug import BackgroundAugment
from edge_reid.data.loader import build_train_loader
from edge_reid.data.masks import DatasetMaskProvider, GrabCutMaskProvider, dataset_mask_path
from edge_reid.data.synthetic.dataset import generate_dataset
from edge_reid.data.transforms import augment_options
from edge_reid.engine.builders import build_data
from edge_reid.engine.config import load_config
from edge_reid.engine.distributed import DistInfo
from edge_reid.errors import InvalidInputError

CONFIGS = Path(__file__).resolve().parents[1] / "train" / "configs"
PLAIN = {"flip_p": 0.0, "pad": 0, "color_jitter": None, "erasing_p": 0.0}
GRADIENT = {"provider": "dataset", "families": {"gradient": {"p": 1.0, "strength": 1.0}}}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bg") / "synthetic6"
    generate_dataset(out, num_ids=6, num_cams=2, images_per_id_per_cam=2, num_distractors=0, num_junk=0)
    return out


def _first_batch(root: Path, augment: dict, workers: int = 0):
    dataset = build_dataset("market1501", str(root), verbose=False)
    loader = build_train_loader(dataset, (64, 32), p=2, k=2, seed=3, workers=workers, augment=augment)
    loader.set_epoch(0)
    images, pids, _, index = next(iter(loader))
    return loader, images, index


def test_augment_options_accept_the_background_section() -> None:
    assert augment_options({"pad": 4, "background": GRADIENT}) == {"pad": 4}
    with pytest.raises(InvalidInputError, match="Unknown augmentation option"):
        augment_options({"backgrond": GRADIENT})


def test_loader_builds_the_pre_transform_and_changes_only_the_background(root: Path) -> None:
    loader, augmented, index = _first_batch(root, {**PLAIN, "background": GRADIENT})
    pre = loader.dataset.pre_transform
    assert isinstance(pre, BackgroundAugment) and isinstance(pre.provider, DatasetMaskProvider)
    assert pre.families == {"gradient": {"p": 1.0, "strength": 1.0}}
    _, plain, plain_index = _first_batch(root, dict(PLAIN))
    assert torch.equal(index, plain_index)  # same samples: only the pre-transform differs
    records = loader.dataset.records
    for row, i in enumerate(index.tolist()):
        mask = cv2.imread(str(dataset_mask_path(records[i].path)), cv2.IMREAD_GRAYSCALE)
        person = cv2.resize(mask, (32, 64), interpolation=cv2.INTER_AREA) == 255  # fully inside the person
        background = cv2.resize(mask, (32, 64), interpolation=cv2.INTER_AREA) == 0
        diff = (augmented[row] - plain[row]).abs().amax(dim=0).numpy()
        assert diff[person].max() < 1e-6, "person pixels changed"
        assert diff[background].mean() > 0.02, "the background was not augmented"


def test_in_process_loader_repeats_an_epoch_exactly(root: Path) -> None:
    # resuming replays an epoch from its seed: the pre-transform's draws must follow the epoch too
    augment = {**PLAIN, "background": {"provider": "dataset", "families": {"pattern": {"p": 0.5, "strength": 1.0},
                                                                           "noise": {"p": 0.5, "strength": 1.0}}}}
    loader, first, _ = _first_batch(root, augment)
    loader.set_epoch(0)
    again = next(iter(loader))[0]
    assert torch.equal(first, again)


def test_training_config_switches_it_on(root: Path) -> None:
    cfg = load_config({"data": {"dataset": "market1501", "root": str(root), "input_size": [64, 32], "p": 2, "k": 2,
                                "workers": 0, "augment": {"background": {"provider": {"name": "dataset",
                                                                                      "fallback": "grabcut"}}}}})
    _, loader = build_data(cfg, DistInfo(), verbose=False)
    pre = loader.dataset.pre_transform
    assert isinstance(pre, BackgroundAugment) and isinstance(pre.provider.fallback, GrabCutMaskProvider)
    assert set(pre.families) == {"hsv", "texture", "noise", "blur", "pattern", "gradient"}
    bad = load_config({"data": {"dataset": "market1501", "root": str(root), "workers": 0,
                                "augment": {"background": {"provider": "segment-anything"}}}})
    with pytest.raises(InvalidInputError, match="Unknown mask provider 'segment-anything'"):
        build_data(bad, DistInfo(), verbose=False)


def test_shipped_visnet_configs() -> None:
    market = load_config(CONFIGS / "visnet_market.yaml")["data"]["augment"]["background"]
    assert market["provider"] == {"name": "dataset", "fallback": "grabcut"}
    assert set(market["families"]) == {"hsv", "texture", "noise", "blur", "pattern", "gradient"}
    assert load_config(CONFIGS / "visnet_synthetic.yaml")["data"]["augment"]["background"]["provider"] == "dataset"
    assert load_config(CONFIGS / "visnet_synthetic_quick.yaml")["data"]["augment"]["background"] is None


def test_semantic_loss_has_no_label_smoothing_by_default() -> None:
    from edge_reid.losses.semantic import SemanticLoss, semantic_pseudo_labels

    torch.manual_seed(0)
    logits, fused = torch.randn(2, 4, 8, 4), torch.randn(2, 16, 8, 4)
    labels = semantic_pseudo_labels(fused)
    got = SemanticLoss().compute({"semantic_logits": logits, "fused_map": fused}, torch.zeros(2, dtype=torch.long))
    assert got.item() == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    smoothed = SemanticLoss(label_smoothing=0.1).compute({"semantic_logits": logits, "fused_map": fused}, None)
    assert smoothed.item() != pytest.approx(got.item(), rel=1e-4)
