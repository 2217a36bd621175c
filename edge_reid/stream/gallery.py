"""The gallery of known identities: enrol, match by cosine similarity, persist atomically.

An identity has an integer id, a name and one or more L2-normalised embeddings (one per
enrolment image, or a track's aggregate). By default (``scoring="centroid"``) a query's score
for an identity is its cosine to the normalised mean of that identity's embeddings; with
``scoring="best"`` it is the best cosine over them. A match needs ``score >= threshold``.
Enrolment images show a person from several viewpoints, and with "best" one view that happens
to resemble another person outvotes the rest: on the synthetic video, walker 3's camera-1 track
scored 0.68 against walker 1's best enrolment image and 0.66 against its own (centroids: 0.68
vs 0.71), and walker 4's tracks scored below 0.5 against every one of its own images (centroid
0.54-0.55), so walker 4 became a new identity.

Default threshold 0.5 (cosine) when nothing calibrates it (`edge-reid stream` calibrates it on the
enrolment images, :mod:`.calibration`), chosen on the synthetic multi-camera video (4 walkers, 2 cameras)
with the quick-trained VisNet embedder (train/configs/visnet_synthetic_quick.yaml) over ONNX
Runtime, centroid scoring and the pipeline's appearance split of tracks: at 0.4, 0.45 and 0.5
every walker kept its own enrolled identity in all its tracks (2 per walker); at 0.55 and 0.6
walker 4 became a new identity (consistently, in both its tracks). Re-tune it for another model
with ``--threshold``.

On disk (``DIR``): ``gallery.npz`` (vectors, owners) and ``gallery.json`` (identities, the
embedder's :class:`~edge_reid.metadata.ModelMeta`, and the SHA-256 of the npz so a mismatched
pair is detected). Both are written atomically, npz first. A gallery built by another model
(different model name, input size, embedding size or options) is refused with one sentence.

Vector search uses faiss (exact inner-product index) when importable, numpy otherwise; both
return the same scores.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta
from edge_reid.stream.gallery_file import GALLERY_JSON, GALLERY_NPZ, check_threshold, read_gallery, write_gallery

DEFAULT_THRESHOLD = 0.5
#: how an identity with several embeddings is scored: the cosine to their normalised mean
#: ("centroid", default) or the best cosine over them ("best")
SCORINGS = ("centroid", "best")
DEFAULT_SCORING = "centroid"
#: metadata fields that must agree for embeddings to be comparable
_COMPATIBLE_KEYS = ("model", "input_size", "embedding_dim", "model_options", "dataset")


@dataclass
class Identity:
    """One person the gallery knows; ``source`` is ``enrolled`` or ``track:<camera>/<id>``."""

    id: int
    name: str
    source: str = "enrolled"
    created: float = 0.0


class VectorIndex:
    """Exact inner-product search over L2-normalised rows (numpy; faiss when ``use_faiss``)."""

    def __init__(self, vectors: np.ndarray, use_faiss: Optional[bool] = None) -> None:
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.backend = "numpy"
        self._faiss_index = None
        if use_faiss is None:
            use_faiss = faiss_available()
        if use_faiss and len(self.vectors):
            import faiss

            index = faiss.IndexFlatIP(self.vectors.shape[1])
            index.add(self.vectors)
            self._faiss_index, self.backend = index, "faiss"

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Q x M inner products (every stored row, so identities can take their best)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        m = len(self.vectors)
        if m == 0:
            return np.zeros((len(queries), 0), np.float32)
        if self._faiss_index is None:
            return queries @ self.vectors.T
        sims, idx = self._faiss_index.search(queries, m)
        out = np.empty((len(queries), m), np.float32)
        np.put_along_axis(out, idx, sims, axis=1)
        return out


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class Gallery:
    """Identities and their embeddings for one embedder (``meta``)."""

    def __init__(self, meta: ModelMeta, threshold: float = DEFAULT_THRESHOLD, use_faiss: Optional[bool] = None,
                 scoring: str = DEFAULT_SCORING) -> None:
        if scoring not in SCORINGS:
            raise InvalidInputError(f"Unknown gallery scoring '{scoring}'; choose {' or '.join(SCORINGS)}.")
        self.meta = meta
        self.threshold = check_threshold(threshold, "The gallery threshold")
        self.scoring = scoring
        self.use_faiss = use_faiss
        self.identities: Dict[int, Identity] = {}
        self._vectors = np.zeros((0, meta.embedding_dim), np.float32)
        self._owners = np.zeros((0,), np.int64)
        # (index over the rows searched, the identity owning each row), rebuilt after any change
        self._search: Optional[Tuple[VectorIndex, np.ndarray]] = None
        self.next_id = 1

    # ------------------------------------------------------------------ content

    def __len__(self) -> int:
        return len(self.identities)

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors

    @property
    def owners(self) -> np.ndarray:
        return self._owners

    def add_identity(self, embeddings: np.ndarray, name: Optional[str] = None, source: str = "enrolled") -> Identity:
        """A new identity with ``embeddings`` (K x D, normalised here); returns it."""
        vectors = _normalise(embeddings, self.meta.embedding_dim)
        ident = Identity(self.next_id, name or f"id{self.next_id:04d}", source, time.time())
        self.next_id += 1
        self.identities[ident.id] = ident
        self._append(ident.id, vectors)
        return ident

    def set_embeddings(self, identity_id: int, embeddings: np.ndarray) -> None:
        """Replace an identity's embeddings (a live track refining the identity it created)."""
        if identity_id not in self.identities:
            raise KeyError(identity_id)
        keep = self._owners != identity_id
        self._vectors, self._owners = self._vectors[keep], self._owners[keep]
        self._append(identity_id, _normalise(embeddings, self.meta.embedding_dim))

    def add_embeddings(self, identity_id: int, embeddings: np.ndarray) -> None:
        """Add embeddings to an identity (a finished track it was assigned to)."""
        if identity_id not in self.identities:
            raise KeyError(identity_id)
        self._append(identity_id, _normalise(embeddings, self.meta.embedding_dim))

    def _append(self, identity_id: int, vectors: np.ndarray) -> None:
        self._vectors = np.concatenate([self._vectors, vectors], axis=0)
        self._owners = np.concatenate([self._owners, np.full(len(vectors), identity_id, np.int64)])
        self._search = None

    # ------------------------------------------------------------------ search

    def scores(self, queries: np.ndarray, use_index: bool = True) -> Tuple[np.ndarray, np.ndarray]:
        """(identity ids (K,), Q x K score of each query for each identity (see ``scoring``)).

        ``use_index=False``: one numpy product over the same rows (the per-frame identity
        assignment's few tracks: faiss's threads cost more than such a search on a loaded CPU)."""
        ids = np.array(sorted(self.identities), np.int64)
        q = _normalise(np.atleast_2d(queries), self.meta.embedding_dim)
        if len(ids) == 0:
            return ids, np.zeros((len(q), 0), np.float32)
        index, owners = self._searcher()
        per_row = index.scores(q) if use_index else q @ index.vectors.T
        out = np.full((len(q), len(ids)), -1.0, np.float32)
        column = np.searchsorted(ids, owners)
        np.maximum.at(out.T, column, per_row.T)
        return ids, out

    def _searcher(self) -> Tuple[VectorIndex, np.ndarray]:
        """(index, owner of each indexed row) over every embedding ("best") or one normalised
        centroid per identity ("centroid"); built on first use after a change."""
        if self._search is None:
            rows, owners = self._vectors, self._owners
            if self.scoring == "centroid" and len(owners):
                owners = np.unique(self._owners)
                sums = np.zeros((len(owners), self._vectors.shape[1]), np.float64)
                np.add.at(sums, np.searchsorted(owners, self._owners), self._vectors.astype(np.float64))
                rows = _normalise(sums.astype(np.float32), self.meta.embedding_dim)
            self._search = (VectorIndex(rows, self.use_faiss), owners)
        return self._search

    def match(self, query: np.ndarray, exclude: Sequence[int] = ()) -> Tuple[Optional[int], float]:
        """(best identity id or None when below the threshold, its cosine) for one embedding."""
        ids, sims = self.scores(query)
        if len(ids) == 0:
            return None, 0.0
        row = sims[0].copy()
        if exclude:
            row[np.isin(ids, list(exclude))] = -np.inf
        best = int(np.argmax(row))
        score = float(row[best])
        return (int(ids[best]) if score >= self.threshold else None), (score if np.isfinite(score) else 0.0)

    @property
    def search_backend(self) -> str:
        return self._searcher()[0].backend

    # ------------------------------------------------------------------ enrolment

    def enrol_folder(self, folder: Union[str, Path], embedder: Any, skip: Collection[str] = (),
                     require: bool = True, camera_id: Optional[int] = None) -> List[Identity]:
        """Enrol ``folder/<name>/*.jpg`` (one sub-folder per person) with ``embedder``, except the
        names in ``skip``; with ``require`` a folder with nothing to enrol is an error.

        ``camera_id``: the camera index a camera-aware model gets for these images; a two-stream
        visible-infrared model embeds them as visible (modality 0).
        """
        from edge_reid.runtime.preprocess import list_images, read_bgr

        root = Path(folder).expanduser()
        if not root.is_dir():
            raise InvalidInputError(f"Gallery folder {root} does not exist.")
        people = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in skip)
        added = []
        for person in people:
            images = list_images(person)
            if not images:
                continue
            embeddings = embedder.embed([read_bgr(p) for p in images], camera_ids=camera_id, modality=0)
            added.append(self.add_identity(embeddings, name=person.name, source="enrolled"))
        if not added and require:
            raise InvalidInputError(f"Gallery folder {root} has no <name>/ sub-folders with images to enrol.")
        return added

    # ------------------------------------------------------------------ persistence

    def save(self, folder: Union[str, Path]) -> Path:
        """Write ``gallery.npz`` then ``gallery.json`` into ``folder`` atomically; returns the folder."""
        root = Path(folder).expanduser()
        write_gallery(root, self._vectors, self._owners, {
            "meta": self.meta.to_dict(), "threshold": self.threshold, "scoring": self.scoring,
            "next_id": self.next_id, "identities": [asdict(self.identities[k]) for k in sorted(self.identities)],
        })
        return root

    @classmethod
    def load(cls, folder: Union[str, Path], meta: ModelMeta, threshold: Optional[float] = None,
             use_faiss: Optional[bool] = None) -> "Gallery":
        """Read a saved gallery (malformed files are refused, see :mod:`.gallery_file`); refuse one
        built with a different model than ``meta``."""
        root = Path(folder).expanduser()
        info, stored, vectors, owners = read_gallery(root)
        different = [k for k in _COMPATIBLE_KEYS if stored.to_dict().get(k) != meta.to_dict().get(k)]
        if different:
            raise InvalidInputError(
                f"The gallery in {root} was built with model '{stored.model}' ({stored.embedding_dim}-d, "
                f"input {stored.input_size[0]}x{stored.input_size[1]}) but the embedder is '{meta.model}' "
                f"({meta.embedding_dim}-d, input {meta.input_size[0]}x{meta.input_size[1]}), differing in "
                f"{', '.join(different)}; re-enrol it with this model or use a new --gallery folder.")
        scoring = info.get("scoring", DEFAULT_SCORING)
        if scoring not in SCORINGS:
            raise InvalidInputError(f"{root / GALLERY_JSON} names an unknown scoring '{scoring}'.")
        gallery = cls(meta, info.get("threshold", DEFAULT_THRESHOLD) if threshold is None else threshold, use_faiss,
                      scoring)
        gallery.identities = {int(i["id"]): Identity(**i) for i in info["identities"]}
        gallery._vectors, gallery._owners = vectors, owners
        gallery.next_id = int(info.get("next_id", max(gallery.identities, default=0) + 1))
        return gallery


def is_saved_gallery(folder: Union[str, Path]) -> bool:
    """True when ``folder`` holds a saved gallery, or half of one (loading then says what is wrong,
    rather than a new gallery overwriting the half that is there)."""
    root = Path(folder).expanduser()
    return (root / GALLERY_JSON).is_file() or (root / GALLERY_NPZ).is_file()


def _normalise(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    if x.shape[1] != dim:
        raise InvalidInputError(f"Embeddings have {x.shape[1]} dimensions; the gallery holds {dim}-d embeddings.")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
