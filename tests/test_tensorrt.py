"""TensorRT: build an engine from an exported graph, run it, refuse a mismatched side file.

Skipped where TensorRT or a CUDA GPU is missing (TensorRT's Python package cannot be installed
on the CPU machines this project is developed on).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

trt = pytest.importorskip("tensorrt", reason="TensorRT's Python package is not installed on this machine")

from edge_reid.deploy.engine_meta import read_side_file, side_file, write_side_file  # noqa: E402
from edge_reid.deploy.onnx_export import OnnxExporter  # noqa: E402
from edge_reid.deploy.trt_builder import BuildOptions, TensorRTBuilder, tensorrt_available  # noqa: E402
from edge_reid.errors import InvalidInputError  # noqa: E402
from edge_reid.models import build_model  # noqa: E402
from edge_reid.runtime import load_embedder  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = tensorrt_available()
    if why:
        pytest.skip(why)
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=3, input_size=(128, 64)).eval()
    return OnnxExporter().export(model, model.meta(), tmp_path_factory.mktemp("trt") / "m.onnx").path


def test_fp32_engine_matches_onnxruntime_and_reuses_timing_cache(onnx_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    builder = TensorRTBuilder(BuildOptions(1, 4, 8, workspace_mb=512, timing_cache=cache))
    info = builder.build(onnx_path, tmp_path / "m.engine")
    assert cache.is_file() and side_file(tmp_path / "m.engine").is_file()
    assert info.profile == {"min": 1, "opt": 4, "max": 8} and info.precision == "fp32"
    engine = load_embedder(tmp_path / "m.engine")
    assert engine.backend == "tensorrt"
    x = np.random.default_rng(0).random((11, 3, 128, 64), dtype=np.float32)  # > max: chunked
    ref = load_embedder(onnx_path).embed(x)
    assert (engine.embed(x) * ref).sum(1).min() >= 0.999


def test_mismatched_engine_is_refused(onnx_path: Path, tmp_path: Path) -> None:
    TensorRTBuilder(BuildOptions(1, 2, 4)).build(onnx_path, tmp_path / "m.engine")
    info = read_side_file(tmp_path / "m.engine")
    info.tensorrt_version = "9.0.0"
    write_side_file(tmp_path / "m.engine", info)
    with pytest.raises(InvalidInputError, match="rebuild it on this machine"):
        load_embedder(tmp_path / "m.engine")
