"""Issue 18 item 9: gallery files that pass the checksum but are malformed are refused at load with
one sentence (never an IndexError mid-stream, never silently accepted), and an npz without its
JSON is not overwritten by a new gallery."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.stream.gallery import GALLERY_JSON, GALLERY_NPZ, Gallery, is_saved_gallery

META = ModelMeta(model="m", input_size=(8, 4), embedding_dim=4, num_ids=0)


def _saved(tmp_path):
    gallery = Gallery(META, threshold=0.6)
    gallery.add_identity(np.eye(4, dtype=np.float32)[:2], name="alice")
    gallery.add_identity(np.eye(4, dtype=np.float32)[2:], name="bob")
    gallery.save(tmp_path)
    return json.loads((tmp_path / GALLERY_JSON).read_text())


def _write(tmp_path, info, npz_bytes=None, **arrays):
    """Rewrite the pair with a matching checksum (the files pass the checksum but are malformed)."""
    if npz_bytes is None:
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        npz_bytes = buffer.getvalue()
    (tmp_path / GALLERY_NPZ).write_bytes(npz_bytes)
    info["npz_sha256"] = hashlib.sha256(npz_bytes).hexdigest()
    (tmp_path / GALLERY_JSON).write_text(json.dumps(info))


V, O = np.eye(4, dtype=np.float32), np.array([1, 1, 2, 2], np.int64)

CASES = {
    "truncated npz": (lambda i: i, {"npz_bytes": "truncate"}, "not a readable npz"),
    "missing owners": (lambda i: i, {"vectors": V}, r"lacks the array\(s\) \['owners'\]"),
    "identity with an extra key": (lambda i: {**i, "identities": [{**i["identities"][0], "age": 3}, i["identities"][1]]},
                                   {"vectors": V, "owners": O}, "identity #1 has keys"),
    "identity missing a key": (lambda i: {**i, "identities": [{k: v for k, v in i["identities"][0].items() if k != "name"},
                                                              i["identities"][1]]},
                               {"vectors": V, "owners": O}, "identity #1 has keys"),
    "unknown owner id": (lambda i: i, {"vectors": V, "owners": np.array([1, 1, 2, 9], np.int64)}, r"identity ids \[9\]"),
    "duplicate ids": (lambda i: {**i, "identities": [i["identities"][0], {**i["identities"][1], "id": 1}]},
                      {"vectors": V, "owners": np.array([1, 1, 1, 1], np.int64)}, "id 1 appears twice"),
    "wrong vector size": (lambda i: i, {"vectors": np.eye(8, dtype=np.float32)[:2], "owners": np.array([1, 2])},
                          "8-d vectors"),
    "flattened vectors": (lambda i: i, {"vectors": V.ravel(), "owners": O}, "not a 2-d float array"),
    "threshold as a string": (lambda i: {**i, "threshold": "0.5"}, {"vectors": V, "owners": O}, "threshold"),
    "next_id as a string": (lambda i: {**i, "next_id": "3"}, {"vectors": V, "owners": O}, "'next_id' is '3'"),
    "next_id not above the ids": (lambda i: {**i, "next_id": 2}, {"vectors": V, "owners": O}, "not above"),
    "NaN vectors": (lambda i: i, {"vectors": np.where(V > 0, np.nan, V).astype(np.float32), "owners": O}, "non-finite"),
    "negative threshold": (lambda i: {**i, "threshold": -0.2}, {"vectors": V, "owners": O}, "from 0 to 1"),
    "orphan vectors": (lambda i: {**i, "identities": i["identities"][:1]}, {"vectors": V, "owners": O},
                       r"identity ids \[2\]"),
    "more owners than vectors": (lambda i: i, {"vectors": V[:3], "owners": O}, "3 vectors but 4 owners"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_gallery_is_refused_in_one_sentence(tmp_path, case):
    edit, arrays, message = CASES[case]
    info = edit(_saved(tmp_path))
    if arrays.get("npz_bytes") == "truncate":
        _write(tmp_path, info, npz_bytes=(tmp_path / GALLERY_NPZ).read_bytes()[:150])
    else:
        _write(tmp_path, info, **arrays)
    with pytest.raises(InvalidInputError, match=message):
        Gallery.load(tmp_path, META)


def test_an_untouched_gallery_still_loads(tmp_path):
    info = _saved(tmp_path)
    _write(tmp_path, info, vectors=V, owners=O)
    gallery = Gallery.load(tmp_path, META)
    assert sorted(i.name for i in gallery.identities.values()) == ["alice", "bob"] and gallery.threshold == 0.6


def test_an_npz_without_its_json_is_reported_not_overwritten(tmp_path):
    from edge_reid.stream.command import open_gallery

    _saved(tmp_path)
    (tmp_path / GALLERY_JSON).unlink()
    before = (tmp_path / GALLERY_NPZ).read_bytes()
    assert is_saved_gallery(tmp_path)

    class NoEmbedder:
        meta = META

    with pytest.raises(InvalidInputError, match="has gallery.npz but not its gallery.json"):
        open_gallery(tmp_path, NoEmbedder(), None, say=lambda s: None)
    assert (tmp_path / GALLERY_NPZ).read_bytes() == before
