"""Issue 18 item 15 (deployment side): a malicious pickle is reported as refused as unsafe (not as
"corrupt"), in checkpoints, pretrained weights and gallery npz files; 1x1-pixel crops are embedded
with a warning."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os

import numpy as np
import pytest
import torch

from edge_reid.errors import InvalidInputError


class _RunsCode:
    """Unpickling this would call os.getpid (harmless here; a real attack runs a shell)."""

    def __reduce__(self):
        return (os.getpid, ())


def test_a_malicious_checkpoint_is_refused_as_unsafe(tmp_path):
    from edge_reid.models import build_model
    from edge_reid.models.checkpoint import load_model_from_checkpoint
    from edge_reid.models.pretrained import load_backbone_weights

    evil = tmp_path / "evil.pth"
    torch.save({"format": "edge-reid-checkpoint", "model": {}, "meta": {}, "payload": _RunsCode()}, evil)
    with pytest.raises(InvalidInputError, match=r"evil.pth was refused as unsafe: it holds Python objects"):
        load_model_from_checkpoint(evil)
    with pytest.raises(InvalidInputError, match=r"Pretrained weights file .*evil.pth was refused as unsafe"):
        load_backbone_weights(build_model("mobilenetv2", num_classes=2, input_size=(64, 32)), evil)
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(evil.read_bytes()[:100])
    with pytest.raises(InvalidInputError, match="corrupt or truncated"):  # other damage is still called that
        load_model_from_checkpoint(truncated)


def test_a_gallery_npz_with_pickled_objects_is_refused_as_unsafe(tmp_path):
    from edge_reid.metadata import ModelMeta
    from edge_reid.stream.gallery import GALLERY_JSON, GALLERY_NPZ, Gallery

    meta = ModelMeta(model="m", input_size=(8, 4), embedding_dim=4, num_ids=0)
    gallery = Gallery(meta)
    gallery.add_identity(np.eye(4, dtype=np.float32)[:1])
    gallery.save(tmp_path)
    buffer = io.BytesIO()
    np.savez(buffer, vectors=np.array([_RunsCode()], dtype=object), owners=np.array([1]))
    (tmp_path / GALLERY_NPZ).write_bytes(buffer.getvalue())
    info = json.loads((tmp_path / GALLERY_JSON).read_text())
    info["npz_sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (tmp_path / GALLERY_JSON).write_text(json.dumps(info))
    with pytest.raises(InvalidInputError, match="refused as unsafe: it holds pickled Python objects"):
        Gallery.load(tmp_path, meta)


def test_one_pixel_crops_are_embedded_with_a_warning(tmp_path, caplog, monkeypatch):
    from edge_reid.runtime import preprocess
    from test_stream_gallery import tiny_embedder

    monkeypatch.setattr(preprocess, "_tiny_seen", [0], raising=False)  # the first tiny crop of this "run"

    emb = tiny_embedder(tmp_path / "tiny.onnx")
    normal = np.full((64, 32, 3), 120, np.uint8)
    with caplog.at_level(logging.WARNING, logger="edge_reid.runtime.preprocess"):
        emb.embed([normal, normal])
        assert not caplog.records
        out = emb.embed([normal, np.full((1, 1, 3), 200, np.uint8)])
    assert out.shape == (2, emb.meta.embedding_dim) and np.isfinite(out).all()
    assert any("smaller than 4x4 pixels (the smallest 1x1)" in r.getMessage() for r in caplog.records)
