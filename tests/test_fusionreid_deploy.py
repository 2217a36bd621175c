"""Camera-aware deployment: ModelMeta.inputs, the runtime's camera ids, ONNX export, the stream's flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.models import build_model
from edge_reid.models.checkpoint import save_checkpoint
from edge_reid.runtime import load_embedder
from edge_reid.runtime.inputs import example_ids, extra_inputs
from edge_reid.stream.command import check_camera_index, parse_camera_index

SMALL = dict(input_size=(64, 32), patch_size=8, patch_stride=6, vit_dim=96, vit_depth=2, vit_heads=3,
             mix_dim=96, htm_layers=1, num_cameras=3)
CAMERA_META = ModelMeta("fusionreid", (64, 32), 8, 5, model_options={"num_cameras": 3},
                        inputs=("images", "camera_ids"))


def test_meta_inputs_round_trip_and_default_for_older_artifacts() -> None:
    data = CAMERA_META.to_dict()
    assert data["inputs"] == ["images", "camera_ids"]
    assert ModelMeta.from_json(CAMERA_META.to_json()).inputs == ("images", "camera_ids")
    del data["inputs"]
    assert ModelMeta.from_dict(data).inputs == ("images",)
    for bad in (["camera_ids", "images"], ["images", "depth"], ["images", "camera_ids", "camera_ids"]):
        with pytest.raises(InvalidInputError, match="invalid 'inputs'"):
            ModelMeta.from_dict({**data, "inputs": bad})


def test_extra_inputs_broadcast_check_and_name_what_is_missing() -> None:
    assert extra_inputs(CAMERA_META, 3, {"camera_ids": 2})["camera_ids"].tolist() == [2, 2, 2]
    feeds = extra_inputs(CAMERA_META, 2, {"camera_ids": [0, 1], "modality": 1})  # modality: not an input here
    assert list(feeds) == ["camera_ids"] and feeds["camera_ids"].dtype == np.int64
    with pytest.raises(InvalidInputError, match="needs a camera index per crop"):
        extra_inputs(CAMERA_META, 2, {"camera_ids": None})
    with pytest.raises(InvalidInputError, match=r"must lie in 0\.\.2, got 0\.\.3"):
        extra_inputs(CAMERA_META, 2, {"camera_ids": [0, 3]})
    with pytest.raises(InvalidInputError, match="2 integers"):
        extra_inputs(CAMERA_META, 2, {"camera_ids": [0, 1, 2]})
    plain = ModelMeta("visnet", (64, 32), 8, 5)
    assert extra_inputs(plain, 2, {"camera_ids": [0, 9]}) == {}  # models without SIE ignore cameras
    assert example_ids(CAMERA_META, 5)["camera_ids"].tolist() == [0, 1, 2, 0, 1]


def test_stream_camera_index_flags() -> None:
    mapping = parse_camera_index(["lobby=0", "gate=2"])
    assert mapping == {"lobby": 0, "gate": 2}
    check_camera_index(CAMERA_META, mapping, ["lobby", "gate"])
    for bad in (["lobby"], ["lobby=x"], ["lobby=-1"], ["=3"]):
        with pytest.raises(InvalidInputError, match="NAME=INT"):
            parse_camera_index(bad)
    with pytest.raises(InvalidInputError, match="twice"):
        parse_camera_index(["a=0", "a=1"])
    with pytest.raises(InvalidInputError, match=r"--camera-index NAME=INT \(0\.\.2\) for gate"):
        check_camera_index(CAMERA_META, {"lobby": 0}, ["lobby", "gate"])
    with pytest.raises(InvalidInputError, match="out of range"):
        check_camera_index(CAMERA_META, {"lobby": 0, "gate": 3}, ["lobby", "gate"])
    with pytest.raises(InvalidInputError, match="not sources"):
        check_camera_index(CAMERA_META, {"door": 0}, ["lobby"])
    check_camera_index(ModelMeta("visnet", (64, 32), 8, 5), {}, ["lobby"])  # no SIE: nothing needed


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("fusionreid", num_classes=5, **SMALL)
    model.train()
    with torch.no_grad():  # a few training-mode passes give the BNs non-trivial running statistics
        for _ in range(2):
            model(torch.rand(8, 3, 64, 32), torch.arange(8) % 3)
    path = tmp_path_factory.mktemp("fusionreid") / "small.pth"
    save_checkpoint(path, model.eval(), model.meta("synthetic"))
    return path


def test_torch_embedder_passes_camera_ids(small_checkpoint: Path) -> None:
    embedder = load_embedder(small_checkpoint, "torch")
    assert embedder.meta.inputs == ("images", "camera_ids") and embedder.meta.model_options["num_cameras"] == 3
    crops = [np.random.default_rng(i).integers(0, 255, (90, 40, 3), dtype=np.uint8) for i in range(3)]
    a = embedder.embed(crops, camera_ids=[0, 1, 2])
    assert a.shape == (3, 2048 + 96 + 4 * 96) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.allclose(embedder.embed(crops[:1], camera_ids=0), a[:1], atol=1e-5)
    assert np.abs(embedder.embed(crops[:1], camera_ids=2) - a[:1]).max() > 1e-4
    with pytest.raises(InvalidInputError, match="needs a camera index"):
        embedder.embed(crops)


@pytest.mark.slow
def test_onnx_export_takes_camera_ids_and_matches_pytorch(small_checkpoint: Path, tmp_path: Path) -> None:
    """ONNX graph inputs images + camera_ids (dynamic batch); ORT equals PyTorch within 1e-4 at batch 1 and 5."""
    from edge_reid.cli import main
    from edge_reid.deploy.compat import check_tensorrt_compat
    from edge_reid.models.checkpoint import load_model_from_checkpoint

    out = tmp_path / "small.onnx"
    assert main(["export", "--checkpoint", str(small_checkpoint), "--out", str(out)]) == 0
    embedder = load_embedder(out, "onnxruntime")
    inputs = {i.name: (i.type, i.shape) for i in embedder.session.get_inputs()}
    assert inputs == {"images": ("tensor(float)", ["batch", 3, 64, 32]), "camera_ids": ("tensor(int64)", ["batch"])}
    model, meta, _ = load_model_from_checkpoint(small_checkpoint)
    x = np.random.default_rng(1).random((5, 3, 64, 32), dtype=np.float32)
    for batch, cams in ((1, np.array([2])), (5, np.array([0, 1, 2, 1, 0]))):
        with torch.no_grad():
            ref = model(torch.from_numpy(x[:batch]), torch.from_numpy(cams)).numpy()
        got = embedder.embed(x[:batch], camera_ids=cams)
        assert got.shape == (batch, meta.embedding_dim) and np.abs(ref - got).max() < 1e-4
    with pytest.raises(InvalidInputError, match="needs a camera index"):
        embedder.embed(x)
    assert check_tensorrt_compat(out).ok


@pytest.mark.slow
def test_stream_refuses_a_camera_aware_model_without_camera_index(small_checkpoint: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    import cv2

    from edge_reid.cli import main

    video = tmp_path / "walk.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for _ in range(3):
        writer.write(np.zeros((120, 160, 3), dtype=np.uint8))
    writer.release()
    args = ["stream", "--model", str(small_checkpoint), "--backend", "torch", "--source", f"lobby={video}",
            "--out", str(tmp_path / "out"), "--max-frames", "2"]
    assert main(args) == 2
    assert "give --camera-index NAME=INT (0..2) for lobby" in capsys.readouterr().err
    assert main(args + ["--camera-index", "lobby=1"]) == 0
