"""Proof that the engine makes a model learn: a short synthetic run lifts Rank-1 and mAP clearly
above the same model untrained (both measured here, on the same query/gallery split)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_reid.data.synthetic.dataset import generate_dataset
from edge_reid.engine import train


@pytest.mark.slow  # a few minutes on a 2-core CPU (about 4 alone)
@pytest.mark.timeout(1800)
def test_short_synthetic_run_lifts_rank1_above_the_untrained_model(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate_dataset(root, num_ids=200, num_cams=6, images_per_id_per_cam=4, num_distractors=0, num_junk=0)
    # the recipe of train/configs/_synthetic_.yaml (measured to learn from scratch on a CPU):
    # 16 ids x 2 images per batch, flip + small pad-and-crop, Adam 1e-3 with a cosine decay
    cfg = {
        "name": "learning",
        "model": {"name": "resnet50"},
        "data": {"dataset": "market1501", "root": str(root), "input_size": [64, 32], "p": 16, "k": 2,
                 "workers": 1, "augment": {"color_jitter": None, "erasing_p": 0.0, "pad": 4}},
        "loss": {"terms": [{"name": "cross_entropy", "label_smoothing": 0.1}]},
        "optim": {"name": "adam", "lr": 1e-3},
        "schedule": {"type": "cosine", "warmup_epochs": 0, "milestones": []},
        "train": {"epochs": 5, "threads": 2, "eval_at_start": True, "eval_every": 0, "checkpoint_iters": 0},
        "output": {"dir": str(tmp_path / "run"), "tensorboard": False},
    }
    result = train(cfg, verbose=False)
    before, after = result.initial_metrics, result.metrics
    assert set(before) >= {"rank1", "mAP"} and set(after) >= {"rank1", "mAP"}
    # clearly better than untrained (percentage points), and far above chance
    # (measured with this recipe: Rank-1 +11 to +19 points, mAP +17 to +18 points over untrained)
    assert after["rank1"] >= before["rank1"] + 8.0, (before, after)
    assert after["mAP"] >= before["mAP"] + 10.0, (before, after)
    assert after["rank1"] >= 3 * result.chance_rank1
    losses = [row["loss"] for row in result.history if "loss" in row]
    assert losses[-1] < losses[0], losses
    assert (result.run_dir / "best.pth").is_file() and result.checkpoint.name == "best.pth"
