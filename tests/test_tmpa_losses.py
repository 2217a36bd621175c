"""TMPA's MSS and MSI losses against independent float64 computations of their documented
formulas; bad input as one sentence (and exit status 2 from a training run)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_reid.errors import EdgeReidError, InvalidInputError
from edge_reid.losses import LOSSES, LossComposer


def _dist(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    if kind == "euclidean":
        return max(float(np.sum((a - b) ** 2)), 1e-12) ** 0.5
    return 1.0 - float(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b))


def _mss_reference(v, r, s, kind, margin, w_vi, w_ss) -> float:
    b = len(v)
    l_vi = sum(max(0.0, margin - _dist(v[i], r[i], kind)) for i in range(b)) / b
    l_ss = sum(max(0.0, margin - _dist(s[i], np.concatenate([v[i], r[i]]), kind)) for i in range(b)) / b
    return w_vi * l_vi + w_ss * l_ss


def _ce(logits: np.ndarray, y: np.ndarray) -> float:
    total = 0.0
    for row, label in zip(logits, y):
        total += math.log(np.exp(row - row.max()).sum()) + row.max() - row[label]
    return total / len(y)


def _msi_reference(v, r, m, y, gen_logits, real_logits, kind, w_id, w_align) -> float:
    terms = []
    for i in range(len(y)):
        generated = r[i] if m[i] == 0 else v[i]
        partners = [j for j in range(len(y)) if y[j] == y[i] and m[j] != m[i]]
        if partners:  # the real features of i's missing modality, same identity
            center = np.mean([v[j] if m[j] == 0 else r[j] for j in partners], axis=0)
            terms.append(_dist(generated, center, kind))
    return w_id * (_ce(gen_logits, y) + _ce(real_logits, y)) + w_align * float(np.mean(terms))


def _batch(seed: int = 0, d: int = 5, classes: int = 4):
    rng = np.random.default_rng(seed)
    y = np.array([0, 0, 1, 1, 2, 2, 3, 0, 2])
    m = np.array([0, 1, 0, 1, 0, 0, 1, 0, 1])  # id 1: one each; id 3: infrared only; id 0: 2 visible + 1 ir
    v, r = rng.normal(size=(len(y), d)), rng.normal(size=(len(y), d))
    s = rng.normal(size=(len(y), 2 * d))
    gen, real = rng.normal(size=(len(y), classes)), rng.normal(size=(len(y), classes))
    return y, m, v, r, s, gen, real


def _outputs(v, r, s, m, gen, real, grad: bool = False):
    t = {"specific_visible": v, "specific_infrared": r, "shared": s, "generated_logits": gen, "specific_logits": real}
    out = {k: torch.tensor(x, dtype=torch.float32, requires_grad=grad) for k, x in t.items()}
    out["modality"] = torch.tensor(m)
    return out


@pytest.mark.parametrize("kind, margin", [("cosine", 1.0), ("cosine", 0.7), ("euclidean", 4.0)])
def test_mss_matches_float64_reference(kind: str, margin: float) -> None:
    y, m, v, r, s, gen, real = _batch()
    loss = LOSSES.get("mss")(distance=kind, margin=margin, vi_weight=1.0, ss_weight=0.5)
    got = loss(_outputs(v, r, s, m, gen, real), torch.tensor(y))
    want = _mss_reference(v, r, s, kind, margin, 1.0, 0.5)
    assert want > 0 and got.item() == pytest.approx(want, rel=1e-5)


def test_mss_pushes_features_apart_and_stops_at_the_margin() -> None:
    y, m, v, r, s, gen, real = _batch(1)
    out = _outputs(v, r, s, m, gen, real, grad=True)
    loss = LOSSES.get("mss")(distance="euclidean", margin=3.0)
    loss(out, torch.tensor(y)).backward()
    dv = out["specific_visible"].grad.numpy()
    for i in range(len(y)):
        gap = _dist(v[i], r[i], "euclidean")
        if gap < 3.0:  # inside the margin: the step (minus the gradient) moves v_i away from r_i
            assert float(-dv[i] @ (v[i] - r[i])) > 0
    far = _outputs(10 * v, -10 * v, np.full_like(s, 100.0), m, gen, real)  # every distance beyond 3
    assert loss(far, torch.tensor(y)).item() == 0.0


@pytest.mark.parametrize("kind", ["euclidean", "cosine"])
def test_msi_matches_float64_reference(kind: str) -> None:
    y, m, v, r, s, gen, real = _batch(2)
    loss = LOSSES.get("msi")(distance=kind, id_weight=0.7, align_weight=1.3)
    got = loss(_outputs(v, r, s, m, gen, real), torch.tensor(y))
    want = _msi_reference(v, r, m, y, gen, real, kind, 0.7, 1.3)
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_msi_moves_only_the_generated_features_when_real_ones_are_detached() -> None:
    y, m, v, r, s, gen, real = _batch(3)
    out = _outputs(v, r, s, m, gen, real, grad=True)
    LOSSES.get("msi")(id_weight=0.0)(out, torch.tensor(y)).backward()
    gv, gr = out["specific_visible"].grad, out["specific_infrared"].grad
    vis = torch.tensor(m == 0)
    assert gv[vis].abs().sum() == 0 and gr[~vis].abs().sum() == 0  # real features: no gradient
    has_partner = torch.tensor([any(y[j] == y[i] and m[j] != m[i] for j in range(len(y))) for i in range(len(y))])
    assert (gr[vis & has_partner].abs().sum(dim=1) > 0).all() and (gv[~vis & has_partner].abs().sum(dim=1) > 0).all()
    assert gr[vis & ~has_partner].abs().sum() == 0 and gv[~vis & ~has_partner].abs().sum() == 0
    out = _outputs(v, r, s, m, gen, real, grad=True)
    LOSSES.get("msi")(id_weight=0.0, detach_real=False)(out, torch.tensor(y)).backward()
    assert out["specific_visible"].grad[vis].abs().sum() > 0


def test_bad_inputs_are_one_sentence() -> None:
    y, m, v, r, s, gen, real = _batch()
    msi, mss = LOSSES.get("msi")(), LOSSES.get("mss")()
    with pytest.raises(InvalidInputError, match="needs visible and infrared samples in every batch, got only visible"):
        msi(_outputs(v, r, s, np.zeros_like(m), gen, real), torch.tensor(y))
    with pytest.raises(InvalidInputError, match="got only infrared"):
        mss_free = _outputs(v, r, s, np.ones_like(m), gen, real)
        msi(mss_free, torch.tensor(y))
    assert torch.isfinite(mss(mss_free, torch.tensor(y)))  # MSS is per sample: one modality is fine
    with pytest.raises(InvalidInputError, match="at least one identity with both"):
        msi(_outputs(v, r, s, m, gen, real), torch.tensor(np.arange(len(y))))
    with pytest.raises(InvalidInputError, match="0 \\(visible\\) or 1"):
        msi(_outputs(v, r, s, m * 2, gen, real), torch.tensor(y))
    with pytest.raises(InvalidInputError, match="B x 2D"):
        mss(_outputs(v, r, s[:, :4], m, gen, real), torch.tensor(y))
    with pytest.raises(EdgeReidError, match="needs the model output 'specific_visible'"):
        mss({"shared": torch.zeros(9, 4)}, torch.tensor(y))
    for spec, message in [({"name": "mss", "distance": "manhattan"}, "must be one of euclidean, cosine"),
                          ({"name": "mss", "margin": -1}, "'margin' must be a finite number >= 0"),
                          ({"name": "msi", "align_weight": "x"}, "must be a number"),
                          ({"name": "msi", "ratio": 1}, "unknown option 'ratio'")]:
        with pytest.raises(EdgeReidError, match=message):
            LossComposer.from_config({"terms": [spec]})


def test_a_training_run_on_a_visible_only_set_exits_2_with_the_msi_sentence(tmp_path: Path, capsys) -> None:
    import yaml

    from edge_reid.cli import main
    from edge_reid.data.synthetic.dataset import generate_dataset

    root = tmp_path / "visible_only"
    generate_dataset(root, num_ids=4, num_cams=2, images_per_id_per_cam=2, num_distractors=0, num_junk=0)
    cfg = {"name": "msi_guard", "model": {"name": "tmpa", "options": {"mft_stages": ["layer4"]}},
           "data": {"dataset": "market1501", "root": str(root), "input_size": [32, 16], "p": 2, "k": 2, "workers": 0},
           "loss": {"terms": [{"name": "cross_entropy"}, {"name": "msi"}]},
           "optim": {"name": "adam", "lr": 1e-3}, "train": {"epochs": 1, "iters_per_epoch": 1, "threads": 1},
           "eval": {"enabled": False}, "output": {"dir": str(tmp_path / "run"), "tensorboard": False}}
    path = tmp_path / "msi.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Loss 'msi' needs visible and infrared samples in every batch" in err and "Traceback" not in err


def test_tmpa_configs_keep_agw_recipe_and_add_the_tmpa_terms() -> None:
    from edge_reid.engine.config import load_config

    configs = Path(__file__).resolve().parents[1] / "train" / "configs"
    agw, agw_syn = load_config(configs / "agw_sysu.yaml"), load_config(configs / "agw_synthetic_vi.yaml")
    for name, base in (("tmpa_sysu", agw), ("tmpa_regdb", agw), ("tmpa_synthetic_vi", agw_syn)):
        cfg = load_config(configs / f"{name}.yaml")
        assert cfg["model"]["name"] == "tmpa" and cfg["model"]["options"]["mft"] is True, name
        assert [t["name"] for t in cfg["loss"]["terms"]] == ["cross_entropy", "wrt", "mss", "msi"], name
        LossComposer.from_config(cfg["loss"])  # every option is one the terms know
        for section in ("optim", "schedule"):
            assert cfg[section] == base[section], (name, section)
        assert cfg["train"]["epochs"] == base["train"]["epochs"] and cfg["data"]["modality_balanced"], name
    regdb = load_config(configs / "tmpa_regdb.yaml")
    assert regdb["data"]["dataset"] == "regdb" and regdb["data"]["options"] == {"split": 1, "direction": "v2t"}
    assert load_config(configs / "tmpa_synthetic_vi.yaml")["data"]["input_size"] == [64, 32]
