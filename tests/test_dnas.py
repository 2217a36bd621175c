"""DCS-DNAS: id split, latency table, supernet gradients, export of a searched architecture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edge_reid.data.datasets.base import ImageRecord
from edge_reid.errors import EdgeReidError
from edge_reid.models import build_model
from edge_reid.models.dnas import DCSSupernet, export_arch, get_space, load_arch, measure_latency_table
from edge_reid.models.dnas.search import latency_cost, split_ids

SIZE = (64, 32)


def test_split_is_by_identity_and_seeded() -> None:
    records = [ImageRecord(f"{pid}_{i}.jpg", pid, i % 2) for pid in range(20) for i in range(3)]
    weights, arch = split_ids(records, 0.2, seed=3)
    w_ids, a_ids = {r.pid for r in weights}, {r.pid for r in arch}
    assert not w_ids & a_ids and len(a_ids) == 4 and len(weights) + len(arch) == len(records)
    assert {r.pid for r in split_ids(records, 0.2, seed=3)[1]} == a_ids
    assert any({r.pid for r in split_ids(records, 0.2, seed=s)[1]} != a_ids for s in range(4, 8))


def test_latency_table_is_measured_and_cached(tmp_path: Path) -> None:
    space = get_space("tiny")
    path = tmp_path / "lat.json"
    table = measure_latency_table(space, SIZE, repeats=2, warmup=1, path=path)
    assert len(table["layers"]) == len(space.layers())
    assert all(v > 0 for row in table["layers"] for v in row.values())
    assert json.loads(path.read_text()) == table
    assert measure_latency_table(space, SIZE, repeats=2, warmup=1, path=path) == table  # read from the cache


@pytest.fixture(scope="module")
def supernet() -> DCSSupernet:
    torch.manual_seed(0)
    space = get_space("tiny")
    net = DCSSupernet(space, 6, SIZE)
    fake = {"layers": [{k: 100.0 * (i + 1) for i, k in enumerate(row)} for row in
                       [dict.fromkeys([c if c == "skip" else f"e{float(c[0])}_k{c[1]}" for c in l["candidates"]])
                        for l in space.layers()]]}
    net.set_latency_table(fake)
    return net


def test_supernet_arch_step_reaches_arch_parameters(supernet: DCSSupernet) -> None:
    supernet.train()
    out = supernet(torch.rand(4, 3, *SIZE))
    assert out["embeddings"].shape == (4, 64) and out["latency"] > 0
    (out["features"].pow(2).mean() * latency_cost(out["latency"], 0.2, 0.6)).backward()
    assert all(float(m.arch_logits.grad.abs().sum()) > 0 for m in supernet.mixed)
    arch_ids = {id(p) for p in supernet.arch_parameters()}
    assert not arch_ids & {id(p) for p in supernet.weight_parameters()}


def test_exported_arch_builds_a_model(supernet: DCSSupernet, tmp_path: Path) -> None:
    with torch.no_grad():
        supernet.mixed[1].arch_logits.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))  # e3.0_k5
    arch = supernet.derive_arch()
    path = export_arch(arch, tmp_path / "arch.json")
    assert load_arch(path)["stages"][1]["layers"][0]["block"] == "e3.0_k5"
    model = build_model("dcs_searched", 6, arch=load_arch(path), input_size=SIZE).train()
    out = model(torch.rand(2, 3, *SIZE))
    assert out["logits"].shape == (2, 6) and out["stem_features"].shape == (2, 8)
    assert sorted(model.attention) == ["1", "2"]
    model.eval()
    assert torch.allclose(model(torch.rand(2, 3, *SIZE)).norm(dim=1), torch.ones(2), atol=1e-5)


def test_bad_arch_is_a_clear_error() -> None:
    with pytest.raises(EdgeReidError, match="arch"):
        build_model("dcs_searched", 3)
    bad = {"format": "edge_reid.dcs_searched/1", "stem_channels": 8, "final_channels": 16,
           "stages": [{"layers": [{"cout": 12, "stride": 2, "block": "skip"}]}]}
    with pytest.raises(EdgeReidError, match="skip"):
        build_model("dcs_searched", 3, arch=bad)


@pytest.mark.slow
def test_tiny_search_end_to_end(tmp_path: Path) -> None:
    from edge_reid.models.dnas.search import run_search

    summary = run_search(tmp_path, epochs=1, max_steps=2, verbose=False)
    arch = load_arch(tmp_path / "arch.json")
    assert summary["arch"] == arch and summary["history"][0]["steps"] == 2
    model = build_model("dcs_searched", 5, arch=arch, input_size=SIZE)
    assert model(torch.rand(2, 3, *SIZE))["embeddings"].shape == (2, 64)
