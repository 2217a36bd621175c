"""DCS-DNAS: sample split, latency table, supernet gradients (blocks and widths), export of a searched architecture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edge_reid.data.datasets.base import ImageRecord
from edge_reid.errors import EdgeReidError
from edge_reid.models import build_model
from edge_reid.models.dnas import DCSSupernet, export_arch, get_space, load_arch, measure_latency_table
from edge_reid.models.dnas.search import arch_step, build_optimizers, latency_cost, split_samples

SIZE = (64, 32)


def test_split_is_by_training_samples_and_seeded() -> None:
    records = [ImageRecord(f"{pid}_{i}.jpg", pid, i % 2) for pid in range(20) for i in range(10)]
    weights, arch = split_samples(records, 0.2, seed=3)
    assert len(arch) == 40 and len(weights) == 160  # 80 / 20 of the samples
    assert not {r.path for r in weights} & {r.path for r in arch}
    assert {r.pid for r in weights} == {r.pid for r in arch} == set(range(20))  # every id on both sides
    assert [r.path for r in split_samples(records, 0.2, seed=3)[1]] == [r.path for r in arch]
    assert any({r.path for r in split_samples(records, 0.2, seed=s)[1]} != {r.path for r in arch} for s in range(4, 8))


def test_latency_table_is_measured_and_cached(tmp_path: Path) -> None:
    space = get_space("tiny")
    path = tmp_path / "lat.json"
    table = measure_latency_table(space, SIZE, repeats=2, warmup=1, path=path)
    assert len(table["layers"]) == len(space.layers())
    for row, spec in zip(table["layers"], space.layers()):
        for key, per_width in row.items():
            assert sorted(per_width) == sorted(str(w) for w in spec["widths"])
            assert all((v == 0) if key == "skip" else (v > 0) for v in per_width.values())
    assert json.loads(path.read_text()) == table
    assert measure_latency_table(space, SIZE, repeats=2, warmup=1, path=path) == table  # read from the cache


@pytest.fixture(scope="module")
def supernet() -> DCSSupernet:
    torch.manual_seed(0)
    space = get_space("tiny")
    net = DCSSupernet(space, 6, SIZE)
    fake = {"layers": [{("skip" if c == "skip" else f"e{float(c[0])}_k{c[1]}"): {str(w): 100.0 * (i + 1) * w for w in l["widths"]}
                        for i, c in enumerate(l["candidates"])} for l in space.layers()]}
    net.set_latency_table(fake)
    return net


def test_supernet_arch_step_reaches_arch_parameters(supernet: DCSSupernet) -> None:
    supernet.train()
    out = supernet(torch.rand(4, 3, *SIZE))
    assert out["embeddings"].shape == (4, 64) and out["latency"] > 0
    (out["features"].pow(2).mean() * latency_cost(out["latency"], 0.2, 0.6)).backward()
    assert all(float(m.arch_logits.grad.abs().sum()) > 0 for m in supernet.mixed if len(m.candidates) > 1)
    assert all(float(g.width_logits.grad.abs().sum()) > 0 for g in supernet.widths if len(g.widths) > 1)
    arch_ids = {id(p) for p in supernet.arch_parameters()}
    assert not arch_ids & {id(p) for p in supernet.weight_parameters()}


def test_a_search_step_moves_the_channel_mask_parameters(supernet: DCSSupernet) -> None:
    from edge_reid.losses import LossComposer

    torch.manual_seed(1)
    composer = LossComposer.from_config({"terms": [{"name": "cross_entropy"}, {"name": "triplet"},
                                                   {"name": "ibb", "weight": 0.01}]})
    _, _, a_opt, _ = build_optimizers(supernet, 1, 1, 0.05, 0.01)
    before = [g.width_logits.detach().clone() for g in supernet.widths]
    blocks = [m.arch_logits.detach().clone() for m in supernet.mixed]
    supernet.train()
    loss, latency = arch_step(supernet, composer, a_opt, torch.rand(6, 3, *SIZE), torch.tensor([0, 0, 1, 1, 2, 2]), 0.2, 0.6)
    assert loss > 0 and latency > 0
    moved = [float((g.width_logits.detach() - b).abs().max()) for g, b in zip(supernet.widths, before) if len(g.widths) > 1]
    assert moved and all(m > 1e-4 for m in moved)
    assert any(float((m.arch_logits.detach() - b).abs().max()) > 1e-4 for m, b in zip(supernet.mixed, blocks))


def test_exported_arch_builds_a_model(supernet: DCSSupernet, tmp_path: Path) -> None:
    with torch.no_grad():
        supernet.mixed[1].arch_logits.copy_(torch.tensor([0.0, 0.0, 0.0, 1.0]))  # e3.0_k5
        supernet.widths[1].width_logits.copy_(torch.tensor([1.0, 0.0]))  # width 8 of (8, 12)
        supernet.widths[2].width_logits.copy_(torch.tensor([0.0, 1.0]))  # width 16 of (12, 16)
    arch = supernet.derive_arch()
    path = export_arch(arch, tmp_path / "arch.json")
    assert load_arch(path)["stages"][1]["layers"][0]["block"] == "e3.0_k5"
    assert [l["cout"] for s in load_arch(path)["stages"] for l in s["layers"]] == [8, 8, 8, 16, 16]
    model = build_model("dcs_searched", 6, arch=load_arch(path), input_size=SIZE).train()
    out = model(torch.rand(2, 3, *SIZE))
    assert out["logits"].shape == (2, 6) and out["stem_features"].shape == (2, 8)
    assert sorted(model.attention) == ["1", "2"] and model.attention["1"].channels == 8
    assert model.meta().model_options["form"] == "linear"
    model.eval()
    assert torch.allclose(model(torch.rand(2, 3, *SIZE)).norm(dim=1), torch.ones(2), atol=1e-5)


def test_searched_model_is_smaller_than_its_supernet(supernet: DCSSupernet, tmp_path: Path) -> None:
    from scripts import load_script

    path = export_arch(supernet.derive_arch(), tmp_path / "arch.json")
    sup, found = load_script("benchmarks/dnas_complexity.py").rows(str(path), [64, 32], num_classes=6)
    assert found["params_M"] < sup["params_M"] and 0 < found["mmacs"] < sup["mmacs"]


def test_bad_arch_is_a_clear_error() -> None:
    with pytest.raises(EdgeReidError, match="arch"):
        build_model("dcs_searched", 3)
    bad = {"format": "edge_reid.dcs_searched/1", "stem_channels": 8, "final_channels": 16,
           "stages": [{"layers": [{"cout": 12, "stride": 2, "block": "skip"}]}]}
    with pytest.raises(EdgeReidError, match="skip"):
        build_model("dcs_searched", 3, arch=bad)


def test_arch_width_outside_its_range_is_one_sentence_and_exit_2(supernet: DCSSupernet, tmp_path: Path, capsys) -> None:
    from edge_reid.cli import run_guarded

    arch = supernet.derive_arch()
    arch["stages"][2]["layers"][0]["cout"] = 20  # the tiny space's last group offers 12 or 16
    arch["stages"][2]["layers"][1]["cout"] = 20
    path = tmp_path / "arch.json"
    path.write_text(json.dumps(arch))
    assert run_guarded(lambda: build_model("dcs_searched", 3, arch=str(path)) and 0) == 2
    err = capsys.readouterr().err.strip()
    assert "width 20, outside its range 12-16" in err and "\n" not in err and "Traceback" not in err


@pytest.mark.slow
def test_tiny_search_end_to_end(tmp_path: Path) -> None:
    from edge_reid.models.dnas.search import run_search

    summary = run_search(tmp_path, epochs=1, max_steps=2, verbose=False)
    arch = load_arch(tmp_path / "arch.json")
    assert summary["arch"] == arch and summary["history"][0]["steps"] == 2
    assert 0 < summary["ibb_init"]["ibb"]["entropy_f"] < 1
    model = build_model("dcs_searched", 5, arch=arch, input_size=SIZE)
    assert model(torch.rand(2, 3, *SIZE))["embeddings"].shape == (2, 64)
