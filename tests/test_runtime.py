"""Runtime: backend chosen from content, crops vs float batches, no torch on the deployment path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_reid.cli import run_guarded
from edge_reid.deploy.engine_meta import EngineInfo, check_compatible, read_side_file, write_side_file
from edge_reid.deploy.onnx_export import OnnxExporter
from edge_reid.errors import EdgeReidError, InvalidInputError, MissingDependencyError
from edge_reid.models import build_model
from edge_reid.models.checkpoint import save_checkpoint
from edge_reid.runtime import detect_backend, load_embedder
from edge_reid.runtime.preprocess import preprocess_crops

SIZE = (64, 32)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runtime")
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=3, input_size=SIZE).eval()
    ckpt = save_checkpoint(root / "weights.bin", model, model.meta("test"))  # name says nothing
    onnx_path = OnnxExporter().export(model, model.meta("test"), root / "weights2.bin").path
    return ckpt, onnx_path


def _crops(n: int = 3):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (int(rng.integers(40, 150)), int(rng.integers(20, 70)), 3), dtype=np.uint8)
            for _ in range(n)]


def test_backend_is_chosen_from_content_and_backends_agree(artifacts) -> None:
    ckpt, onnx_path = artifacts
    assert detect_backend(ckpt) == "torch" and detect_backend(onnx_path) == "onnxruntime"
    torch_e, ort_e = load_embedder(ckpt), load_embedder(onnx_path, threads=1)
    assert (torch_e.backend, ort_e.backend) == ("torch", "onnxruntime")
    assert ort_e.precision == "fp32" and ort_e.device == "cpu" and ort_e.meta.to_json() == torch_e.meta.to_json()
    crops = _crops()
    a, b = torch_e.embed(crops), ort_e.embed(crops)
    assert a.dtype == np.float32 and a.shape == (3, 2048)
    assert np.abs(a - b).max() <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    # a float batch gives the same result as the crops it came from
    assert np.abs(ort_e.embed(preprocess_crops(crops, SIZE)) - b).max() <= 1e-6
    assert ort_e.embed([]).shape == (0, 2048)


def test_preprocess_is_rgb_in_unit_range_without_normalisation() -> None:
    bgr = np.zeros((64, 32, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in BGR
    x = preprocess_crops([bgr], SIZE)
    assert x.shape == (1, 3, 64, 32) and x.dtype == np.float32
    assert x[0, 2].min() == 1.0 and x[0, 0].max() == 0.0  # blue ends up in channel 2 (RGB)
    with pytest.raises(InvalidInputError):
        preprocess_crops([np.zeros((10, 10), np.uint8)], SIZE)


def test_runtime_imports_without_torch(artifacts) -> None:
    _, onnx_path = artifacts
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from edge_reid.runtime import load_embedder\n"
        "import edge_reid.runtime.onnxruntime_backend, edge_reid.deploy.engine_meta\n"
        f"e = load_embedder({str(onnx_path)!r})\n"
        "print(e.embed([np.zeros((50, 20, 3), np.uint8)]).shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(1, 2048)"


def _fake_engine(tmp_path: Path, onnx_path: Path) -> Path:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"not really an engine")
    meta = json.loads(json.dumps(load_embedder(onnx_path).meta.to_dict()))
    write_side_file(engine, EngineInfo("10.3.0", "Orin", "8.7", "fp16", {"min": 1, "opt": 8, "max": 32},
                                       "0" * 64, meta))
    return engine


def test_engine_side_file_mismatch_is_refused(tmp_path: Path, artifacts) -> None:
    engine = _fake_engine(tmp_path, artifacts[1])
    assert detect_backend(engine) == "tensorrt"
    info = read_side_file(engine)
    check_compatible(info, "10.3.0", "Orin", "8.7")  # same build target: accepted
    with pytest.raises(InvalidInputError, match=r"built for TensorRT 10\.3\.0 \(installed: 10\.8\.0\).*rebuild"):
        check_compatible(info, "10.8.0", "Orin", "8.7", engine)
    with pytest.raises(InvalidInputError, match="GPU Orin"):
        check_compatible(info, "10.3.0", "NVIDIA H100", "9.0", engine)


def test_engine_errors_are_one_sentence_from_the_cli(tmp_path: Path, artifacts, capsys) -> None:
    from edge_reid.cli import main

    engine = _fake_engine(tmp_path, artifacts[1])
    assert main(["build", "--verify-engine", str(engine)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "10.3.0" in err and "Orin" in err
    (tmp_path / "model.engine.json").write_text("{ truncated")
    assert main(["build", "--verify-engine", str(engine)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert run_guarded(lambda: load_embedder(engine)) == 2  # corrupt side file: not an engine any more


def test_tensorrt_backend_without_tensorrt_is_one_sentence(tmp_path: Path, artifacts) -> None:
    pytest.importorskip("edge_reid.runtime.tensorrt_backend")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here; the missing-TensorRT message cannot be checked")
    except ImportError:
        pass
    engine = _fake_engine(tmp_path, artifacts[1])
    with pytest.raises(MissingDependencyError, match="TensorRT is not installed"):
        load_embedder(engine)


def test_unknown_backend_and_unknown_file(tmp_path: Path, artifacts) -> None:
    with pytest.raises(EdgeReidError, match="Unknown backend 'foo'"):
        load_embedder(artifacts[1], backend="foo")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02 hello")
    with pytest.raises(InvalidInputError, match="neither an edge-reid checkpoint"):
        load_embedder(junk)
    shutil.rmtree(tmp_path, ignore_errors=True)
