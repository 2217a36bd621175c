"""A saved gallery on disk: write it atomically, read it back refusing anything malformed.

``gallery.npz`` holds ``vectors`` (M x D float32) and ``owners`` (M int64, the identity of each
row); ``gallery.json`` the identities, the embedder's metadata, threshold, scoring, ``next_id``
and the SHA-256 of the npz. :func:`read_gallery` checks every field a tampered or half-edited
pair can get wrong (see the README's "What edge-reid guarantees") and says which, in one sentence.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.utils.atomic import atomic_write, atomic_write_json

GALLERY_JSON, GALLERY_NPZ = "gallery.json", "gallery.npz"
FORMAT = "edge-reid-gallery"
IDENTITY_KEYS = ("id", "name", "source", "created")


def check_threshold(value: Any, what: str = "--threshold") -> float:
    """A match threshold is a cosine similarity: a finite number from 0 to 1."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1
    if not ok:
        raise InvalidInputError(f"{what} must be a cosine similarity from 0 to 1; got {value!r}.")
    return float(value)


def write_gallery(root: Path, vectors: np.ndarray, owners: np.ndarray, info: Dict[str, Any]) -> None:
    """Write the npz, then the JSON (``info`` plus the npz's checksum), each atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, vectors=vectors, owners=owners)
    data = buffer.getvalue()
    with atomic_write(root / GALLERY_NPZ, "wb") as handle:
        handle.write(data)
    atomic_write_json(root / GALLERY_JSON, {"format": FORMAT, "version": 1, **info,
                                            "npz_sha256": hashlib.sha256(data).hexdigest()})


def read_gallery(root: Path) -> Tuple[Dict[str, Any], ModelMeta, np.ndarray, np.ndarray]:
    """(the JSON, its metadata, vectors M x D, owners M) of a saved gallery, every field checked."""
    json_path, npz_path = root / GALLERY_JSON, root / GALLERY_NPZ
    if not json_path.is_file():
        if npz_path.is_file():
            raise InvalidInputError(f"{root} has {GALLERY_NPZ} but not its {GALLERY_JSON}; restore the JSON or move "
                                    f"the npz away (it is not overwritten).")
        raise InvalidInputError(f"{root} holds no saved gallery ({GALLERY_JSON} and {GALLERY_NPZ}).")
    if not npz_path.is_file():
        raise InvalidInputError(f"{root} has {GALLERY_JSON} but not its {GALLERY_NPZ}; re-enrol the gallery.")
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInputError(f"Gallery file {json_path} is not valid JSON.") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise InvalidInputError(f"{json_path} is not an edge-reid gallery.")
    stored = ModelMeta.from_dict(info.get("meta") or {}, source=f"gallery {json_path}")
    bad = lambda what: InvalidInputError(f"Gallery file {json_path} is malformed: {what}.")  # noqa: E731
    if "threshold" in info:
        check_threshold(info["threshold"], f"The threshold in {json_path}")
    next_id = info.get("next_id")
    if next_id is not None and (not isinstance(next_id, int) or isinstance(next_id, bool) or next_id < 1):
        raise bad(f"'next_id' is {next_id!r}, not a positive integer")
    identities = _identities(info.get("identities", []), bad)
    ids = {i["id"] for i in identities}
    if next_id is not None and ids and next_id <= max(ids):
        raise bad(f"'next_id' {next_id} is not above the largest identity id {max(ids)}")
    data = npz_path.read_bytes()
    if info.get("npz_sha256") != hashlib.sha256(data).hexdigest():
        raise InvalidInputError(f"{npz_path} does not belong to {json_path} (checksum differs); re-enrol the gallery.")
    vectors, owners = _arrays(data, npz_path)
    if vectors.shape[1] != stored.embedding_dim:
        raise InvalidInputError(f"{npz_path} holds {vectors.shape[1]}-d vectors but {json_path} says "
                                f"{stored.embedding_dim}-d; re-enrol the gallery.")
    if len(owners) != len(vectors):
        raise InvalidInputError(f"{npz_path} is malformed: {len(vectors)} vectors but {len(owners)} owners.")
    if not np.isfinite(vectors).all():
        raise InvalidInputError(f"{npz_path} holds non-finite (NaN or infinite) vectors; re-enrol the gallery.")
    orphans = sorted(set(owners.tolist()) - ids)
    if orphans:
        raise InvalidInputError(f"{npz_path} holds vectors of identity ids {orphans[:5]} that {json_path} does not "
                                "list; re-enrol the gallery.")
    info["identities"] = identities
    return info, stored, vectors, owners


def _identities(items: Any, bad: Any) -> List[Dict[str, Any]]:
    if not isinstance(items, list):
        raise bad("'identities' is not a list")
    seen = set()
    for n, item in enumerate(items):
        if not isinstance(item, dict) or set(item) != set(IDENTITY_KEYS):
            keys = sorted(item) if isinstance(item, dict) else type(item).__name__
            raise bad(f"identity #{n + 1} has keys {keys}, expected {list(IDENTITY_KEYS)}")
        ident = item["id"]
        if not isinstance(ident, int) or isinstance(ident, bool) or ident < 1:
            raise bad(f"identity #{n + 1} has id {ident!r}, not a positive integer")
        if ident in seen:
            raise bad(f"identity id {ident} appears twice")
        if not isinstance(item["name"], str) or not isinstance(item["source"], str):
            raise bad(f"identity {ident} has a name or source that is not a string")
        if isinstance(item["created"], bool) or not isinstance(item["created"], (int, float)):
            raise bad(f"identity {ident} has a 'created' time that is not a number")
        seen.add(ident)
    return items


def _arrays(data: bytes, npz_path: Path) -> Tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            missing = [k for k in ("vectors", "owners") if k not in arrays.files]
            if missing:
                raise InvalidInputError(f"{npz_path} lacks the array(s) {missing}; re-enrol the gallery.")
            vectors, owners = arrays["vectors"], arrays["owners"]
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise InvalidInputError(f"{npz_path} was refused as unsafe: it holds pickled Python objects, which could "
                                    "run code when loaded; re-enrol the gallery.") from None
        raise InvalidInputError(f"{npz_path} is not a readable npz (ValueError); re-enrol the gallery.") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise InvalidInputError(f"{npz_path} is not a readable npz ({type(exc).__name__}); re-enrol the gallery.") from None
    if vectors.ndim != 2 or vectors.dtype.kind != "f":
        raise InvalidInputError(f"{npz_path} is malformed: 'vectors' is {vectors.dtype} of shape {vectors.shape}, "
                                "not a 2-d float array.")
    if owners.ndim != 1 or owners.dtype.kind not in "iu":
        raise InvalidInputError(f"{npz_path} is malformed: 'owners' is {owners.dtype} of shape {owners.shape}, "
                                "not a 1-d integer array.")
    return vectors.astype(np.float32), owners.astype(np.int64)
