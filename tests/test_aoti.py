"""AOTInductor packages: export with metadata inside, the aoti runtime backend, refusal of bad packages.

One tiny model is compiled once for the module (AOTInductor's C++ compile takes ~30 s on the shared
2-core CPU); the default-checkpoint acceptance test compiles VisNet and is ``slow``.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_reid.cli import main
from edge_reid.deploy.aoti_export import AotiExporter, custom_ops_in, lower_fused_ops
from edge_reid.deploy.aoti_package import looks_like_aoti_package, read_package_info
from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.runtime import detect_backend, load_embedder

SIZE = (32, 16)
MAX_BATCH = 4


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.fc(self.bn(self.conv(x)).relu().mean((2, 3))), dim=1)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    model = Tiny().eval()
    model.bn.running_mean.uniform_(-0.5, 0.5)
    meta = ModelMeta("tiny", SIZE, 16, 3, dataset="test")
    result = AotiExporter("fp32", "cpu", max_batch=MAX_BATCH).export(model, meta, tmp_path_factory.mktemp("aoti") / "tiny.pt2")
    return result, model, meta


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, *SIZE), dtype=np.float32)


def _rewrite(src: Path, dst: Path, **changes: str) -> Path:
    """Copy a package with some metadata strings changed (in every *_metadata.json inside)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("_metadata.json"):
                data = json.dumps({**json.loads(data), **changes}).encode()
            zout.writestr(item, data)
    return dst


def _cli(capsys, *argv: str):
    rc = main(["build", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err.strip()


def test_package_matches_pytorch_at_any_batch_and_carries_metadata(package):
    result, model, meta = package
    assert result.path.is_file() and result.precision == "fp32" and result.device == "cpu"
    assert result.fusion.startswith("no fused custom ops")
    assert detect_backend(result.path) == "aoti"
    embedder = load_embedder(result.path)
    assert (embedder.backend, embedder.precision, embedder.device) == ("aoti", "fp32", "cpu")
    assert embedder.meta == meta
    for n in (1, 3, MAX_BATCH + 5):  # dynamic batch; above the package's maximum it runs in chunks
        x = _batch(n, seed=n)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = embedder.embed(x)
        assert got.shape == (n, 16)
        np.testing.assert_allclose(got, ref, atol=1e-5)
    # the same strings are compiled into the library: the loaded runner reports them
    loaded = embedder.runner.get_metadata()
    assert ModelMeta.from_json(loaded["edge_reid.meta"]) == meta
    assert read_package_info(result.path).values["edge_reid.torch_version"] == torch.__version__


def test_backend_is_chosen_from_content_not_name(package, tmp_path):
    result, model, meta = package
    renamed = shutil.copyfile(result.path, tmp_path / "weights.onnx")
    assert detect_backend(renamed) == "aoti"
    np.testing.assert_allclose(load_embedder(renamed).embed(_batch(2)), load_embedder(result.path).embed(_batch(2)),
                               atol=1e-6)
    plain_zip = tmp_path / "model.pt2"
    torch.save({"x": torch.zeros(1)}, plain_zip)  # a torch zip archive, not a package
    assert detect_backend(plain_zip) == "torch"
    assert not looks_like_aoti_package(plain_zip)


def test_verify_package_command_accepts_a_good_package(package, capsys):
    rc, out, err = _cli(capsys, "--verify-package", str(package[0].path))
    assert rc == 0 and "runs here" in out and err == ""


def test_package_from_another_toolkit_version_is_refused(package, tmp_path, capsys):
    old = _rewrite(package[0].path, tmp_path / "old.pt2", **{"edge_reid.toolkit_version": "0.0.1"})
    rc, _, err = _cli(capsys, "--verify-package", str(old))
    assert rc == 2 and "built by edge-reid 0.0.1" in err and len(err.splitlines()) == 1
    other_torch = _rewrite(package[0].path, tmp_path / "torch1.pt2", **{"edge_reid.torch_version": "1.13.1"})
    rc, _, err = _cli(capsys, "--verify-package", str(other_torch))
    assert rc == 2 and "PyTorch 1.13.1" in err and len(err.splitlines()) == 1


def test_truncated_package_is_refused(package, tmp_path, capsys):
    data = package[0].path.read_bytes()
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(data[: len(data) // 2])
    assert detect_backend(cut) == "aoti"  # still recognised as a package, so the message is about a package
    rc, _, err = _cli(capsys, "--verify-package", str(cut))
    assert rc == 2 and "corrupt or truncated" in err and len(err.splitlines()) == 1
    with pytest.raises(InvalidInputError, match="corrupt or truncated"):
        load_embedder(cut)


def test_corrupt_package_is_refused(package, tmp_path, capsys):
    data = bytearray(package[0].path.read_bytes())
    with zipfile.ZipFile(package[0].path) as z:
        lib = next(i for i in z.infolist() if i.filename.endswith(".so"))
    start = lib.header_offset + 30 + len(lib.filename) + len(lib.extra) + lib.compress_size // 2
    data[start:start + 64] = bytes(64)  # damage the compiled library in the middle
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(bytes(data))
    rc, _, err = _cli(capsys, "--verify-package", str(bad))
    assert rc == 2 and "corrupt or truncated" in err and len(err.splitlines()) == 1


def test_package_on_a_device_it_was_not_built_for_is_refused(package, tmp_path, capsys):
    with pytest.raises(InvalidInputError, match="compiled for CPU and cannot run on CUDA"):
        load_embedder(package[0].path, device="cuda")
    if not torch.cuda.is_available():
        gpu = _rewrite(package[0].path, tmp_path / "gpu.pt2", AOTI_DEVICE_KEY="cuda", **{"edge_reid.device": "cuda"})
        rc, _, err = _cli(capsys, "--verify-package", str(gpu))
        assert rc == 2 and "compiled for a CUDA GPU" in err and len(err.splitlines()) == 1


def test_not_a_package_is_refused(tmp_path, capsys):
    plain = tmp_path / "x.pt2"
    torch.save({"x": torch.zeros(1)}, plain)
    rc, _, err = _cli(capsys, "--verify-package", str(plain))
    assert rc == 2 and "not an AOTInductor package" in err


def test_half_precision_package_on_cpu_is_one_sentence(tmp_path, capsys):
    rc, _, err = _cli(capsys, "--format", "aoti", "--device", "cpu", "--precisions", "fp16", "--out", str(tmp_path))
    assert rc == 2 and "needs a CUDA GPU" in err and len(err.splitlines()) == 1
    with pytest.raises(InvalidInputError, match="half precision needs a CUDA GPU"):
        AotiExporter("bf16", "cpu")
    if not torch.cuda.is_available():
        rc, _, err = _cli(capsys, "--format", "aoti", "--device", "cuda", "--out", str(tmp_path))
        assert rc == 2 and "--device cuda needs a CUDA GPU" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_fast_fusion_custom_ops_are_lowered_to_their_reference():
    from edge_reid.models import build_model

    torch.manual_seed(0)
    model = build_model("visnet", num_classes=4, input_size=(64, 32), fusion_impl="fast").eval()
    x = torch.rand(2, 3, 64, 32)
    batch = torch.export.Dim("batch", min=1, max=8)
    with torch.no_grad():
        exported = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    assert custom_ops_in(exported) == ["edge_reid::weighted_scale_sum"]
    lowered, fusion = lower_fused_ops(exported, "cpu")
    assert custom_ops_in(lowered) == [] and fusion.startswith("reference decomposition of edge_reid::weighted_scale_sum")
    x3 = torch.rand(3, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(lowered.module()(x3), model(x3), atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_default_checkpoint_package_matches_pytorch(tmp_path, capsys):
    """Acceptance: ``build --format aoti`` on the default checkpoint; load_embedder cosine >= 0.999."""
    from edge_reid.deploy.default_model import default_checkpoint
    from edge_reid.models.checkpoint import load_model_from_checkpoint

    rc, out, err = _cli(capsys, "--format", "aoti", "--out", str(tmp_path), "--eval-limit", "64", "--latency-iters", "2")
    assert rc == 0, err
    manifest = json.loads((tmp_path / "manifest_aoti.json").read_text())
    package_path = Path(manifest["packages"]["fp32"])
    embedder = load_embedder(package_path)
    model, meta, _ = load_model_from_checkpoint(default_checkpoint(lambda s: None))
    x = np.random.default_rng(1).random((8, 3, *meta.input_size), dtype=np.float32)
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)).numpy()
    got = embedder.embed(x)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() >= 0.999
    assert manifest["parity"][0]["passed"] and "fused ops" in out


def test_format_registry_and_help_table(capsys):
    from edge_reid.deploy.formats import FORMATS, formats_table, get_format

    table = formats_table()
    assert all(name in table for name in FORMATS) and "bf16" in table
    with pytest.raises(InvalidInputError, match="Unknown format 'tflite'"):
        get_format("tflite")
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    assert "formats (--format):" in capsys.readouterr().out
    rc, _, err = _cli(capsys, "--format", "onnx", "--device", "cpu", "--model", "resnet50")
    assert rc == 2 and "--device applies to --format aoti" in err


def test_cuda_package_for_another_gpu_is_refused(package, tmp_path):
    from edge_reid.deploy.aoti_package import check_gpu

    gpu = _rewrite(package[0].path, tmp_path / "h100.pt2", **{"edge_reid.gpu_name": "NVIDIA H100",
                                                              "edge_reid.compute_capability": "9.0"})
    info = read_package_info(gpu)
    check_gpu(info, "NVIDIA H200", "9.0")  # same architecture: accepted
    with pytest.raises(InvalidInputError, match=r"compiled for NVIDIA H100 \(compute capability 9.0\), but this GPU is Orin \(8.7\)"):
        check_gpu(info, "Orin", "8.7")
