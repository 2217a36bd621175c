"""The complexity table: measured rows agree with complexity(), paper rows are present."""

from __future__ import annotations

import pytest

from edge_reid.bench import complexity
from edge_reid.bench.complexity_table import PAPERS, complexity_rows, fast_fusion_available, inference_params
from edge_reid.models import build_model


def test_resnet50_row_matches_complexity_and_paper_rows_are_listed() -> None:
    notes = []
    rows = complexity_rows(["resnet50"], input_size=(64, 32), num_classes=751, say=notes.append)
    measured = [r for r in rows if r["kind"] == "measured"]
    assert [r["model"] for r in measured] == ["resnet50"]
    ref = complexity(build_model("resnet50", num_classes=751, input_size=(64, 32)), input_size=(64, 32))
    row = measured[0]
    assert row["params"] == ref.params and row["macs"] == ref.macs
    assert row["gmacs"] == pytest.approx(ref.gmacs) and row["input"] == "64x32"
    assert row["params_inference_M"] == pytest.approx(ref.params / 1e6)  # every resnet50 parameter runs in eval
    assert row["paper_gflops"] is None and row["vs_paper_pct"] is None  # no published number for the plain baseline
    papers = {r["model"]: r for r in rows if r["kind"] == "paper"}
    assert papers["VisNet (paper)"]["paper_params_M"] == "32.41" and papers["VisNet (paper)"]["paper_gflops"] == "4.601"
    assert {"TransReID (paper)", "CLIP-ReID (paper)", "MobileNetV2 (paper)", "DCS-FB MobileNetV2 (paper)"} <= set(papers)
    assert len(papers) == len(PAPERS)


def test_visnet_inference_params_leave_out_the_training_only_semantic_head() -> None:
    model = build_model("visnet", num_classes=751, input_size=(64, 32))
    total = sum(p.numel() for p in model.parameters())
    assert inference_params(model, (64, 32)) == total - model.parameter_breakdown()["semantic_head"]
    assert model.training  # mode restored


def test_visnet_rows_carry_the_paper_numbers_and_the_fast_fusion_when_available() -> None:
    notes = []
    rows = [r for r in complexity_rows(["visnet"], input_size=(64, 32), say=notes.append) if r["kind"] == "measured"]
    assert all(r["paper_params_M"] == "32.41" and r["paper_gflops"] == "4.601" for r in rows)
    assert rows[0]["params"] == 32_411_720  # the paper's Table III total with 751 ids
    if fast_fusion_available():
        assert [r["variant"] for r in rows] == ["fusion_impl=reference", "fusion_impl=fast"]
        assert rows[0]["params"] == rows[1]["params"]
    else:
        assert len(rows) == 1 and any("not available" in n for n in notes)


def test_paper_conventions_reproduce_the_published_figures() -> None:
    """At 256x128: VisNet in thop's convention is the paper's 4.601 G; the DCS-MobileNetV2 rows
    (2 x multiply-adds, parameters without the classifier) are within 3% of the DCS paper."""
    rows = complexity_rows(["visnet", "dcs_mobilenetv2"], input_size=(256, 128), say=lambda _: None)
    measured = {(r["model"], r["variant"]): r for r in rows if r["kind"] == "measured"}
    visnet = measured[("visnet", "fusion_impl=reference" if fast_fusion_available() else "")]
    assert visnet["paper_convention_g"] == pytest.approx(4.601, abs=0.001)
    assert visnet["gmacs"] == pytest.approx(4.551, abs=0.001)  # the multiply-adds alone
    dcs, vanilla = measured[("dcs_mobilenetv2", "")], measured[("dcs_mobilenetv2", "vanilla=True")]
    assert abs(dcs["vs_paper_pct"]) < 3.0 and abs(vanilla["vs_paper_pct"]) < 3.0
    assert dcs["paper_convention_g"] == pytest.approx(2 * dcs["gmacs"])
    assert dcs["params_no_classifier_M"] == pytest.approx(2.31, rel=0.03)
