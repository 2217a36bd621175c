"""Gallery: enrol, match, save/reload round trip, refusal of another model's gallery, faiss = numpy."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_reid.errors import EdgeReidError
from edge_reid.metadata import ONNX_METADATA_KEY, ModelMeta
from edge_reid.stream.gallery import GALLERY_JSON, GALLERY_NPZ, Gallery, faiss_available


def tiny_embedder(path: Path, model: str = "tiny_colour"):
    """A real (tiny) ONNX embedder with edge-reid metadata: 4 x 2 grid of mean colours (24-d)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from edge_reid.runtime import load_embedder

    meta = ModelMeta(model=model, input_size=(32, 16), embedding_dim=24, num_ids=0, dataset="test")
    nodes = [helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Flatten", ["pooled"], ["embeddings"], axis=1)]
    graph = helper.make_graph(nodes, "tiny_colour",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 32, 16])],
                              [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", 24])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, meta.to_json()
    onnx.save(proto, str(path))
    return load_embedder(path, "onnxruntime")


def _person(colour_top, colour_bottom, h=64, w=32):
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2] = colour_top
    img[h // 2:] = colour_bottom
    return img


def test_enrol_match_save_reload_round_trip(tmp_path):
    emb = tiny_embedder(tmp_path / "tiny.onnx")
    people = {"alice": ((200, 40, 40), (30, 30, 30)), "bob": ((40, 200, 40), (220, 220, 220))}
    for name, (top, bottom) in people.items():
        (tmp_path / "enrol" / name).mkdir(parents=True)
        for k in range(2):
            cv2.imwrite(str(tmp_path / "enrol" / name / f"{k}.jpg"), _person(top, bottom))
    gallery = Gallery(emb.meta, threshold=0.9)
    added = gallery.enrol_folder(tmp_path / "enrol", emb)
    assert [i.name for i in added] == ["alice", "bob"]
    query = emb.embed([_person((190, 45, 45), (35, 30, 30))])
    ident, score = gallery.match(query)
    assert gallery.identities[ident].name == "alice" and score > 0.9
    new = gallery.add_identity(emb.embed([_person((20, 20, 230), (230, 200, 10))]), source="track:cam1/3")
    gallery.save(tmp_path / "g")
    assert (tmp_path / "g" / GALLERY_JSON).is_file() and (tmp_path / "g" / GALLERY_NPZ).is_file()
    assert not list((tmp_path / "g").glob("*.tmp"))  # atomic writes leave no temporaries
    again = Gallery.load(tmp_path / "g", emb.meta)
    assert sorted(i.name for i in again.identities.values()) == sorted(["alice", "bob", new.name])
    assert again.next_id == gallery.next_id and again.threshold == pytest.approx(0.9)
    np.testing.assert_array_equal(again.vectors, gallery.vectors)
    assert again.match(query) == gallery.match(query)


def test_gallery_of_another_model_is_refused(tmp_path):
    meta = ModelMeta(model="visnet", input_size=(256, 128), embedding_dim=8, num_ids=10)
    gallery = Gallery(meta)
    gallery.add_identity(np.eye(8, dtype=np.float32)[:2])
    gallery.save(tmp_path)
    other = ModelMeta(model="mobilenetv2", input_size=(256, 128), embedding_dim=8, num_ids=10)
    with pytest.raises(EdgeReidError, match="built with model 'visnet'.*embedder is 'mobilenetv2'"):
        Gallery.load(tmp_path, other)
    # a tampered npz no longer matches its JSON
    info = json.loads((tmp_path / GALLERY_JSON).read_text())
    np.savez(tmp_path / GALLERY_NPZ, vectors=np.zeros((1, 8), np.float32), owners=np.ones(1, np.int64))
    with pytest.raises(EdgeReidError, match="checksum"):
        Gallery.load(tmp_path, meta)
    assert info["meta"]["model"] == "visnet"
    with pytest.raises(EdgeReidError, match="no saved gallery"):
        Gallery.load(tmp_path / "missing", meta)


def test_threshold_and_best_of_several_embeddings():
    meta = ModelMeta(model="m", input_size=(8, 4), embedding_dim=3, num_ids=0)
    gallery = Gallery(meta, threshold=0.8, scoring="best")
    a = gallery.add_identity(np.array([[1, 0, 0], [0, 1, 0]], np.float32))
    ident, score = gallery.match(np.array([0, 1, 0.1], np.float32))
    assert ident == a.id and score == pytest.approx(1 / np.sqrt(1.01), rel=1e-5)
    ident, score = gallery.match(np.array([0, 0, 1], np.float32))
    assert ident is None and score == pytest.approx(0.0, abs=1e-6)
    assert gallery.match(np.array([0, 1, 0], np.float32), exclude=[a.id])[0] is None


def test_centroid_scoring_uses_the_mean_of_an_identitys_embeddings(tmp_path):
    """An identity enrolled from several views is scored by their centroid (the default): one
    view that happens to resemble the query no longer outvotes a closer identity."""
    meta = ModelMeta(model="m", input_size=(8, 4), embedding_dim=3, num_ids=0)
    views = np.array([[1, 0, 0], [0, 0, 1]], np.float32)  # centroid (0.707, 0, 0.707)
    other = np.array([[0.9, 0.436, 0]], np.float32)
    query = np.array([1, 0, 0], np.float32)
    best = Gallery(meta, threshold=0.5, scoring="best")
    a, b = best.add_identity(views), best.add_identity(other)
    assert best.match(query)[0] == a.id
    centroid = Gallery(meta, threshold=0.5)
    assert centroid.scoring == "centroid"
    a, b = centroid.add_identity(views), centroid.add_identity(other)
    ident, score = centroid.match(query)
    assert ident == b.id and score == pytest.approx(0.9 / np.linalg.norm([0.9, 0.436]), rel=1e-5)
    ids, sims = centroid.scores(query)
    assert sims[0, list(ids).index(a.id)] == pytest.approx(1 / np.sqrt(2), rel=1e-5)
    centroid.set_embeddings(a.id, np.array([[1, 0, 0]], np.float32))  # the centroid follows the change
    assert centroid.match(query) == (a.id, pytest.approx(1.0))
    centroid.save(tmp_path)
    assert Gallery.load(tmp_path, meta).scoring == "centroid"
    best.save(tmp_path / "best")
    assert Gallery.load(tmp_path / "best", meta).match(query)[0] == best.match(query)[0]
    with pytest.raises(EdgeReidError, match="scoring"):
        Gallery(meta, scoring="median")


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed (pip install faiss-cpu); numpy search is used")
def test_faiss_and_numpy_search_agree():
    meta = ModelMeta(model="m", input_size=(8, 4), embedding_dim=16, num_ids=0)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(30, 16)).astype(np.float32)
    queries = rng.normal(size=(5, 16)).astype(np.float32)
    for scoring in ("centroid", "best"):
        results = []
        for use_faiss in (False, True):
            gallery = Gallery(meta, use_faiss=use_faiss, scoring=scoring)
            for k in range(10):
                gallery.add_identity(vectors[3 * k:3 * k + 3])
            results.append(gallery.scores(queries))
            assert gallery.search_backend == ("faiss" if use_faiss else "numpy")
        np.testing.assert_array_equal(results[0][0], results[1][0])
        np.testing.assert_allclose(results[0][1], results[1][1], atol=1e-5)
