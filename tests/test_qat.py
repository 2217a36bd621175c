"""QAT: PyTorch's fake quantization matches the exported Q/DQ graph; missing data is one sentence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edge_reid.cli import main
from edge_reid.deploy.compat import check_tensorrt_compat
from edge_reid.deploy.int8 import prepare_for_quantization
from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.deploy.qat import QatModel, QatSettings, finetune
from edge_reid.deploy.qat_layers import activation_scales
from edge_reid.metadata import ModelMeta
from edge_reid.models import build_model
from edge_reid.models.checkpoint import save_checkpoint

SIZE = (64, 32)


class ConvBnNet(nn.Module):
    """Conv-BN-ReLU blocks with a residual add, pooling and a linear embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.fc = nn.Linear(32, 24)
        with torch.no_grad():  # statistics that make folding matter
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.uniform_(-0.2, 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.down(x + self.a(x))
        return self.fc(x.mean(dim=(2, 3)))


def images(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = torch.from_numpy(rng.normal(size=(count, 3, 8, 4)).astype(np.float32))
    return torch.nn.functional.interpolate(low, size=SIZE, mode="bilinear", align_corners=False).numpy()


def test_fake_quant_matches_the_exported_qdq_graph(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConvBnNet().eval()
    meta = ModelMeta(model="convbn", input_size=SIZE, embedding_dim=24, num_ids=0)
    qat = QatModel(model, meta, images(32, 0), tmp_path)
    assert qat.folded == 3 and not qat.float_nodes and len(qat.node_to_module) == 4
    calibrated = dict(qat.scales)
    assert set(calibrated) == {i for i, _ in qat.io.values()}  # every quantized input has its own step
    # a little fine-tuning moves the weights and the learned activation steps; the export must follow them
    losses = finetune(qat, model, images(64, 1), QatSettings(epochs=2, lr=1e-3, scale_lr=3e-2, batch_size=16),
                      say=lambda _: None)
    assert losses[-1] < losses[0]
    moved = [abs(qat.scales[t] / calibrated[t] - 1) for t in calibrated]
    assert max(moved) > 0.01, moved
    # the calibrated steps are floors: a learned step grows (less clipping) but never shrinks below them
    assert all(qat.scales[t] >= calibrated[t] * (1 - 1e-6) for t in calibrated), (qat.scales, calibrated)
    out = qat.export({"trt": tmp_path / "qat_trt.onnx", "cpu": tmp_path / "qat_cpu.onnx"})
    assert check_tensorrt_compat(out["trt"]).ok

    x = images(16, 2)
    with torch.no_grad():
        torch_out = qat.model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(out["trt"]), providers=["CPUExecutionProvider"])
    ort_out = session.run(None, {session.get_inputs()[0].name: x})[0]
    fc_node = next(n for n, m in qat.node_to_module.items() if m == "fc")
    # the embedding (the graph's output) is not quantized; fc's input is: one quantization step of
    # that input moves embedding j by at most step * sum_i |W_ji|; almost every value is identical
    step = qat.scales[qat.io[fc_node][0]]
    bound = step * qat.float_model().fc.weight.detach().abs().sum(dim=1).numpy()
    diff = np.abs(torch_out - ort_out)
    assert (diff <= bound[None, :] + 1e-5).all(), (diff.max(), bound.min())
    # a rounding tie that falls the other way (torch multiplies by 1/step, ONNX Runtime divides) moves every
    # output of that image; most images come out identical
    assert np.mean((diff <= 1e-5 * (1 + np.abs(ort_out))).all(axis=1)) >= 0.75
    # the fine-tuned float weights differ from the original's (the export is of the trained model)
    assert not torch.equal(qat.float_model().fc.weight, model.fc.weight)
    # the graphs store the learned steps, not the calibrated ones; the CPU flavour's U8 zero point is 128
    # (the S8 grid) on the signed image input and 0 on the ReLU outputs (the same steps from 0 up)
    stored = activation_scales(onnx.load(str(out["trt"])))
    for tensor, scale in qat.scales.items():
        assert stored[tensor] == pytest.approx(scale, rel=1e-6)
    cpu = onnx.load(str(out["cpu"]))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in cpu.graph.initializer}
    q_of = {n.input[0]: n for n in cpu.graph.node if n.op_type == "QuantizeLinear"}
    for tensor, scale in qat.scales.items():
        q = q_of[tensor]
        assert float(inits[q.input[1]]) == pytest.approx(scale, rel=1e-6)
        assert int(inits[q.input[2]]) == (0 if tensor in qat.non_negative else 128)
    assert 0 < len(qat.non_negative & set(qat.scales)) < len(qat.scales)
    cpu_session = ort.InferenceSession(str(out["cpu"]), providers=["CPUExecutionProvider"])
    cpu_out = cpu_session.run(None, {cpu_session.get_inputs()[0].name: x})[0]
    cos = (cpu_out * torch_out).sum(1) / np.linalg.norm(cpu_out, axis=1) / np.linalg.norm(torch_out, axis=1)
    assert cos.min() > 0.99


def test_qat_starts_from_the_post_training_float_set(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = ConvBnNet().eval()
    meta = ModelMeta(model="convbn", input_size=SIZE, embedding_dim=24, num_ids=0)
    reference = OnnxExporter().export(model, meta, tmp_path / "fp32.onnx").path  # unfolded, as PTQ sees it
    convs = [n.name for n in prepare_for_quantization(reference, tmp_path / "p.onnx") and
             onnx.load(str(tmp_path / "p.onnx")).graph.node if n.op_type == "Conv"]
    qat = QatModel(model, meta, images(32, 0), tmp_path / "work", float_nodes=[convs[1]], reference=reference)
    assert sorted(qat.node_to_module.values()) == ["down.0", "fc", "stem.0"]  # block a's conv stays float
    assert isinstance(qat.model.a[0], nn.Conv2d) and len(qat.float_nodes) == 1
    # fine-tuning trains the quantized layers and their steps; the float layer stays as it was
    before = qat.model.a[0].weight.detach().clone(), qat.model.stem[0].layer.weight.detach().clone()
    finetune(qat, model, images(32, 1), QatSettings(epochs=1, lr=1e-3, batch_size=16), say=lambda _: None)
    assert torch.equal(qat.model.a[0].weight, before[0]) and not torch.equal(qat.model.stem[0].layer.weight, before[1])
    out = qat.export({"trt": tmp_path / "qat_trt.onnx"})["trt"]
    graph = onnx.load(str(out)).graph
    dq_outputs = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    float_conv = next(n for n in graph.node if n.name == qat.float_nodes[0])
    assert float_conv.input[1] not in dq_outputs and float_conv.input[0] not in dq_outputs
    assert sum(n.op_type == "Conv" and n.input[1] in dq_outputs for n in graph.node) == 2


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = build_model("mobilenetv2", num_classes=3, input_size=SIZE).eval()
    return save_checkpoint(tmp_path_factory.mktemp("qat") / "m.pth", model, model.meta("nowhere"))


def test_qat_without_training_data_is_one_sentence(untrained_checkpoint: Path, tmp_path: Path, capsys) -> None:
    code = main(["build", "--checkpoint", str(untrained_checkpoint), "--qat", "--calib-random", "--calib-images", "8",
                 "--precisions", "fp32", "--eval-dataset", "none", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "QAT needs the training data" in err and err.count("\n") == 0


def test_qat_with_an_empty_calibration_set_is_one_sentence(untrained_checkpoint: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code = main(["build", "--checkpoint", str(untrained_checkpoint), "--qat", "--calib-dir", str(tmp_path / "empty"),
                 "--precisions", "fp32", "--eval-dataset", "none", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "contains no images" in err and err.count("\n") == 0


def test_an_unknown_qat_start_is_one_sentence(tmp_path: Path) -> None:
    from edge_reid.deploy.qat_plan import plan_qat
    from edge_reid.errors import InvalidInputError

    meta = ModelMeta(model="convbn", input_size=SIZE, embedding_dim=24, num_ids=0)
    with pytest.raises(InvalidInputError, match="Unknown QAT start 'everything'; choose ptq or all."):
        plan_qat(meta, None, images(4, 0), overrides={"start": "everything"})


def test_qat_trains_on_the_set_the_checkpoint_was_trained_on() -> None:
    """A config's data.options (here a generated synthetic set's parameters) pick QAT's training crops too."""
    from edge_reid.data import build_dataset
    from edge_reid.deploy.int8 import calibration_from_paths
    from edge_reid.deploy.qat_plan import training_crops
    from edge_reid.errors import InvalidInputError

    options = dict(num_ids=6, num_cams=2, images_per_id_per_cam=2, num_distractors=2, num_junk=1, seed=3)
    train = [r.path for r in build_dataset("synthetic", verbose=False, **options).train]
    crops = training_crops("synthetic", None, SIZE, 4, "the checkpoint", options)
    assert np.array_equal(crops, calibration_from_paths(train, SIZE, 4))
    with pytest.raises(InvalidInputError, match="num_people"):
        training_crops("synthetic", None, SIZE, 4, "the checkpoint", {"num_people": 3})
