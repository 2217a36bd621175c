"""Training on a GPU with bf16 autocast (train.amp=bf16): one epoch of every synthetic config, and the
step time of VisNet's paper-order fusion beside the fast fusion (printed for the README's table)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

CONFIGS = sorted(p for p in (Path(__file__).resolve().parents[1] / "train" / "configs").glob("*synthetic*.yaml")
                 if not p.name.startswith("_"))


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_one_bf16_epoch_of_each_synthetic_config(config, tmp_path):
    from edge_reid.engine import train

    result = train(str(config), ("train.epochs=1", "train.amp=bf16", "train.device=cuda", "train.eval_at_start=false",
                                 "output.tensorboard=false", f"output.dir={tmp_path / 'run'}"), verbose=False)
    assert len(result.history) == 1
    row = result.history[0]
    assert math.isfinite(row["loss"]) and row["skipped_steps"] == 0 and row["images_per_s"] > 0
    assert result.checkpoint.is_file()
    print(f"{config.stem}: bf16 epoch {row['time_s']:.1f} s, {row['images_per_s']:.0f} img/s, loss {row['loss']:.3f}")


def _step_ms(fusion_impl: str, batch: int = 64, steps: int = 20) -> float:
    from edge_reid.models import build_model

    torch.manual_seed(0)
    model = build_model("visnet", num_classes=100, fusion_impl=fusion_impl).cuda().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, 256, 128, device="cuda")
    y = torch.randint(0, 100, (batch,), device="cuda")
    times = []
    for i in range(steps + 3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(x)["logits"].float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        if i >= 3:
            times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)[len(times) // 2]


@pytest.mark.gpu
def test_fast_fusion_bf16_training_step_is_faster_than_paper_order():
    reference, fast = _step_ms("reference"), _step_ms("fast")
    print(f"VisNet bf16 training step at batch 64 on {torch.cuda.get_device_name()}: paper-order fusion "
          f"{reference:.1f} ms, fast fusion {fast:.1f} ms")
    assert fast < reference
