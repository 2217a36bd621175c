"""DCS-FB models follow the forward contract of every model."""

from __future__ import annotations

import pytest
import torch

from edge_reid.errors import EdgeReidError
from edge_reid.models import build_model
from edge_reid.models.dcs_attention import DCSAttention


@pytest.fixture(scope="module")
def mobilenet():
    torch.manual_seed(0)
    return build_model("dcs_mobilenetv2", 5, input_size=(64, 32))


def test_dcs_mobilenetv2_forward_contract(mobilenet) -> None:
    x = torch.rand(4, 3, 64, 32)
    mobilenet.train()
    out = mobilenet(x)
    assert out["logits"].shape == (4, 5)
    assert out["features"].shape == out["embeddings"].shape == (4, 1280)
    assert out["stem_features"].shape == (4, 32) and not out["stem_features"].requires_grad
    mobilenet.eval()
    emb = mobilenet(x)
    assert emb.shape == (4, 1280)
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    assert mobilenet.meta("synthetic").model == "dcs_mobilenetv2"


def test_dcs_mobilenetv2_blocks_sit_after_the_stages(mobilenet) -> None:
    blocks = {k: m.channels for k, m in mobilenet.attention.items()}
    assert blocks == {"1": 24, "2": 32, "3": 64, "4": 320}
    assert set(mobilenet.kept_fractions()) == {"stage1", "stage2", "stage3", "stage4"}


def test_dcs_model_at_init_matches_plain_backbone() -> None:
    torch.manual_seed(0)
    dcs = build_model("dcs_mobilenetv2", 3, insert_after=[2, 4]).eval()
    plain = build_model("mobilenetv2", 3).eval()
    # Same backbone and head weights (DCS keys are extra): zero-initialised BN makes them equal.
    state = {k: v for k, v in dcs.state_dict().items() if not k.startswith("attention.")}
    mapped = {}
    for k, v in state.items():
        k = k.replace("stages.0.", "backbone.stage1.").replace("stages.1.", "backbone.stage2.")
        k = k.replace("stages.2.", "backbone.stage3.").replace("stages.3.", "backbone.stage4.")
        k = k.replace("stem.", "backbone.stem.", 1) if k.startswith("stem.") else k
        k = k.replace("final.", "backbone.final_conv.", 1) if k.startswith("final.") else k
        mapped[k] = v
    plain.load_state_dict(mapped)
    x = torch.rand(2, 3, 64, 32)
    assert torch.allclose(dcs(x), plain(x), atol=1e-5)
    assert sorted(dcs.attention) == ["2", "4"]


@pytest.mark.slow
def test_dcs_resnet50_forward_contract() -> None:
    model = build_model("dcs_resnet50", 4, vanilla=True, input_size=(64, 32)).train()
    out = model(torch.rand(2, 3, 64, 32))
    assert out["embeddings"].shape == (2, 2048) and out["stem_features"].shape == (2, 64)
    # default: after layer1 and layer2 (the candidate closest to the paper's 23.9 M / 6.24 G)
    assert {k: m.channels for k, m in model.attention.items()} == {"1": 256, "2": 512}
    every = build_model("dcs_resnet50", 4, insert_after=[1, 2, 3, 4], sampler_rank=8, input_size=(64, 32))
    assert {k: m.channels for k, m in every.attention.items()} == {"1": 256, "2": 512, "3": 1024, "4": 2048}
    assert sum(p.numel() for p in every.attention["4"].sampler.parameters()) == 2048 * 8 + 8 * 2048 + 2048
    assert all(isinstance(m, DCSAttention) and m.vanilla for m in model.attention.values())


def test_attention_options_are_recorded_in_the_metadata() -> None:
    meta = build_model("dcs_mobilenetv2", 3, input_size=(64, 32)).meta("synthetic")
    assert meta.model_options["form"] == "linear" and meta.model_options["key_stride"] == 2
    meta = build_model("dcs_resnet50", 3, form="softmax", input_size=(64, 32)).meta("synthetic")
    assert meta.model_options["form"] == "softmax" and meta.model_options["insert_after"] == [1, 2]
    model = build_model("dcs_mobilenetv2", 3, form="softmax", key_stride=3, input_size=(64, 32))
    assert all(m.form == "softmax" and m.key_stride == 3 for m in model.attention.values())


@pytest.mark.parametrize("options, words", [({"key_stride": 0}, "key_stride"), ({"key_stride": 1.5}, "key_stride"),
                                            ({"form": "cosine"}, "form"), ({"sampler_rank": -1}, "sampler_rank")])
def test_bad_attention_options_are_one_sentence_and_exit_2(options, words, capsys) -> None:
    from edge_reid.cli import run_guarded

    assert run_guarded(lambda: build_model("dcs_mobilenetv2", 3, **options) and 0) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and err.count("\n") == 0 and "Traceback" not in err


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(EdgeReidError, match="insert_after"):
        build_model("dcs_mobilenetv2", 3, insert_after=[0, 5])
    with pytest.raises(EdgeReidError, match="no option"):
        build_model("dcs_mobilenetv2", 3, heads=2)


@pytest.mark.parametrize("form", ["linear", "softmax"])
def test_both_forms_export_to_standard_onnx_with_their_metadata(form: str, tmp_path) -> None:
    import numpy as np
    import onnxruntime as ort

    from edge_reid.deploy.compat import check_operators
    from edge_reid.deploy.onnx_export import OnnxExporter, load_onnx, read_metadata

    torch.manual_seed(0)
    model = build_model("dcs_mobilenetv2", 5, form=form, input_size=(64, 32)).eval()
    for block in model.attention.values():  # non-zero BN so the attention reaches the output
        torch.nn.init.normal_(block.bn.weight)
    path = OnnxExporter().export(model, model.meta("test"), tmp_path / "m.onnx").path
    proto = load_onnx(path)
    assert all(n.domain in ("", "ai.onnx") for n in proto.graph.node)
    assert check_operators(proto) == []
    assert read_metadata(proto)[0].model_options["form"] == form
    x = np.random.default_rng(0).random((2, 3, 64, 32), dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    assert np.abs(got - ref).max() <= 1e-4


def test_checkpoint_from_before_the_form_option_loads_as_softmax(tmp_path) -> None:
    import dataclasses

    from edge_reid.models.checkpoint import load_model_from_checkpoint, save_checkpoint

    model = build_model("dcs_mobilenetv2", 3, form="softmax", input_size=(64, 32))
    meta = model.meta("synthetic")
    old = dataclasses.replace(meta, model_options={k: v for k, v in meta.model_options.items()
                                                   if k not in ("form", "key_stride", "insert_after")})
    save_checkpoint(tmp_path / "old.pth", model, old)
    loaded, _, _ = load_model_from_checkpoint(tmp_path / "old.pth")
    assert all(m.form == "softmax" for m in loaded.attention.values())
    new = build_model("dcs_mobilenetv2", 3, input_size=(64, 32))
    save_checkpoint(tmp_path / "new.pth", new, new.meta("synthetic"))
    assert all(m.form == "linear" for m in load_model_from_checkpoint(tmp_path / "new.pth")[0].attention.values())
