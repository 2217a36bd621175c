"""Camera centring (:mod:`edge_reid.stream.domain`): every camera (and the enrolment images)
moves all its embeddings by its own offset; subtracting each domain's running mean removes it,
so identities that the offset hides are found again (synthetic embeddings, no model)."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import pytest

from edge_reid.metadata import ModelMeta
from edge_reid.stream.domain import ENROL_DOMAIN, CameraCentring, centre_gallery
from edge_reid.stream.gallery import Gallery
from edge_reid.stream.identities import IdentityAssigner

DIM, PEOPLE = 32, 6


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _world(seed: int = 0):
    """(identity vectors, per-domain offsets): offsets 2.5x an identity's norm, like a strong cast."""
    rng = np.random.default_rng(seed)
    people = _unit(rng.normal(size=(PEOPLE, DIM)))
    offsets = {d: 2.5 * _unit(rng.normal(size=DIM)) for d in (ENROL_DOMAIN, "cam1", "cam2")}
    return people, offsets, rng


def _views(people, offset, rng, n: int = 1) -> np.ndarray:
    """n embeddings of every person seen in a domain (person, view, D), L2-normalised."""
    return _unit(people[:, None, :] + offset + 0.05 * rng.normal(size=(len(people), n, DIM)))


def _rank1(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    return np.argmax(queries @ gallery.T, axis=1)


def test_centring_removes_a_per_camera_offset():
    people, offsets, rng = _world()
    cam1, cam2 = _views(people, offsets["cam1"], rng, 10), _views(people, offsets["cam2"], rng, 10)
    q1, q2 = cam1.mean(1), cam2.mean(1)
    raw_same = float(np.mean(np.sum(_unit(q1) * _unit(q2), axis=1)))
    assert raw_same < 0.5  # the offsets dominate: a person scores low against themselves
    centring = CameraCentring()
    centring.observe("cam1", cam1.reshape(-1, DIM))
    centring.observe("cam2", cam2.reshape(-1, DIM))
    c1, c2 = centring.centre("cam1", q1), centring.centre("cam2", q2)
    np.testing.assert_allclose(np.linalg.norm(c1, axis=1), 1.0, atol=1e-5)
    assert (_rank1(c2, c1) == np.arange(PEOPLE)).all()
    assert float(np.mean(np.sum(c1 * c2, axis=1))) > 0.9


def test_a_camera_is_not_centred_before_min_count_crops():
    centring = CameraCentring(min_count=5)
    v = _unit(np.arange(1, DIM + 1, dtype=np.float64))
    centring.observe("cam1", np.tile(v, (4, 1)))
    np.testing.assert_allclose(centring.centre("cam1", v), v, atol=1e-6)
    centring.observe("cam1", _unit(np.ones((1, DIM))))
    assert float(centring.centre("cam1", v) @ v) < 0.9
    centring.observe(ENROL_DOMAIN, v[None])  # the enrolment mean applies from its first image
    assert float(centring.centre(ENROL_DOMAIN, v) @ v) < 0.9


class _Track:
    def __init__(self, camera_id: str, track_id: int, embedding: np.ndarray) -> None:
        self.camera_id, self.track_id, self.last_frame = camera_id, track_id, 0
        self.identity: Optional[int] = None
        self.owns_identity, self.score, self.observations, self.weight_sum = False, 0.0, 8, 8.0
        self.vector_sum = embedding.astype(np.float64)
        self.pending: Dict[int, int] = {}

    def aggregate(self) -> np.ndarray:
        return _unit(self.vector_sum).astype(np.float32)


def _assign(centred: bool) -> Dict[int, Optional[int]]:
    """Enrol every person from 4 offset images, then assign the tracks of camera 2 (all present),
    open-set threshold 0.5."""
    people, offsets, rng = _world(1)
    gallery = Gallery(ModelMeta(model="test", input_size=(32, 16), embedding_dim=DIM, num_ids=0, dataset="t"),
                      threshold=0.5, use_faiss=False)
    for k, views in enumerate(_views(people, offsets[ENROL_DOMAIN], rng, 4)):
        gallery.add_identity(views, name=f"p{k}")
    centring = centre_gallery(gallery) if centred else None
    crops = _views(people, offsets["cam2"], rng, 12)
    if centring is not None:
        centring.observe("cam2", crops.reshape(-1, DIM))
    tracks = [_Track("cam2", k, crops[k].mean(0)) for k in range(PEOPLE)]
    assigner = IdentityAssigner(gallery, new_identities=False, centring=centring)
    assigner.update("cam2", 0, tracks)
    return {t.track_id: t.identity for t in tracks}


@pytest.mark.parametrize("centred", [False, True])
def test_centring_gives_every_track_its_enrolled_identity(centred):
    right = sum(ident == k + 1 for k, ident in _assign(centred).items())
    if centred:
        assert right == PEOPLE
    else:
        assert right < PEOPLE // 2  # the offsets push every score under the threshold


def test_the_pipeline_centres_its_gallery_and_counts_every_embedded_crop(tmp_path):
    from edge_reid.stream.detectors import build_detector
    from edge_reid.stream.pipeline import StreamConfig, StreamPipeline
    from edge_reid.stream.sources import FramePacket
    from test_stream_gallery import tiny_embedder
    from test_stream_pipeline import _frames

    emb = tiny_embedder(tmp_path / "tiny.onnx")
    rng = np.random.default_rng(3)
    gallery = Gallery(emb.meta, threshold=0.5, use_faiss=False)
    for name in ("a", "b"):
        gallery.add_identity(rng.normal(size=(3, emb.meta.embedding_dim)) + 2.0, name=name)
    raw = gallery.vectors.copy()
    assert StreamPipeline(emb, build_detector("background"), gallery, StreamConfig()).centring is None
    np.testing.assert_array_equal(gallery.vectors, raw)  # off by default: the gallery is untouched
    pipeline = StreamPipeline(emb, build_detector("background"), gallery,
                              StreamConfig(camera_centring=True, centring_min_count=1))
    assert abs(float(gallery.vectors.mean(axis=0) @ raw.mean(axis=0))) < 0.05  # enrolment mean removed
    for t, frame in enumerate(_frames(12, 10 ** 6)):
        pipeline.process(FramePacket(frame=frame, camera_id="cam1", frame_index=t, timestamp=t / 10))
    assert pipeline.crops_embedded > 0 and pipeline.centring._count["cam1"] == pipeline.crops_embedded
