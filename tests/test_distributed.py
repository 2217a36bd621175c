"""Two CPU processes on Gloo (DistributedDataParallel + DistributedPKSampler) end with identical weights."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from edge_reid.data.synthetic.dataset import generate_dataset


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    """One rank, set up exactly as torchrun would (environment variables)."""
    os.environ.update({"WORLD_SIZE": str(world), "RANK": str(rank), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from edge_reid.engine import train

    cfg = {
        "name": "ddp",
        "model": {"name": "mobilenetv2"},
        "data": {"dataset": "market1501", "root": root, "input_size": [64, 32], "p": 4, "k": 2, "workers": 0},
        "loss": {"terms": [{"name": "cross_entropy", "label_smoothing": 0.1}, {"name": "triplet", "margin": 0.3}]},
        "train": {"epochs": 1, "iters_per_epoch": 3, "threads": 1, "device": "cpu", "checkpoint_iters": 0},
        "eval": {"enabled": False},
        "output": {"dir": out, "tensorboard": False},
    }
    result = train(cfg, verbose=False)
    torch.save({k: v.detach().clone() for k, v in result.model.state_dict().items()},
               Path(out) / f"rank{rank}_weights.pt")


def test_two_gloo_ranks_end_with_identical_weights(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate_dataset(root, num_ids=16, num_cams=3, images_per_id_per_cam=3, num_distractors=0, num_junk=0)
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), str(root), str(out)), nprocs=2, join=True)

    w0 = torch.load(out / "rank0_weights.pt", weights_only=True)
    w1 = torch.load(out / "rank1_weights.pt", weights_only=True)
    params = [k for k in w0 if "running_" not in k and "num_batches" not in k]
    assert params and all(torch.equal(w0[k], w1[k]) for k in params)
    # training really happened, and rank 0 alone wrote the checkpoint and logs
    ckpt = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 3
    assert all(torch.equal(ckpt["model"][k], w0[k]) for k in params)
    torch.manual_seed(0)
    from edge_reid.models import build_model

    fresh = build_model("mobilenetv2", 8, input_size=(64, 32)).state_dict()
    assert any(not torch.equal(fresh[k], w0[k]) for k in params if w0[k].is_floating_point())
    assert len((out / "log.jsonl").read_text().splitlines()) == 1
