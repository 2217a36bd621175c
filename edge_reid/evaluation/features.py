"""Embedding extraction from a model and a test loader, and query x gallery distances.

``extract_features`` is the only place in the evaluation package that needs torch (imported
inside it), so metrics, re-ranking and pictures work with numpy alone.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Tuple

import numpy as np

from edge_reid.errors import InvalidInputError

METRICS = ("euclidean", "cosine")


def extract_features(
    model: Any, loader: Iterable[Any], flip: bool = False, device: Optional[Any] = None
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Embed every batch of ``loader`` -> (features N x D float32, pids, camids, indices).

    Batches are ``(image, pid, camid, index)`` as the test loaders yield them. The model runs
    in eval mode under ``torch.no_grad`` (its train/eval mode is restored afterwards, so a
    training loop can call this between epochs). With ``flip`` each embedding is the mean of
    the image's and its horizontal mirror's, L2-normalised again. Rows keep the loader order.
    """
    import torch
    import torch.nn.functional as F

    if device is None:
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
    device = torch.device(device)
    was_training = bool(getattr(model, "training", False))
    model.eval()
    feats, pids, camids, indices = [], [], [], []
    try:
        with torch.no_grad():
            for batch in loader:
                if len(batch) != 4:
                    raise InvalidInputError(
                        f"A test loader must yield (image, pid, camid, index) batches, got {len(batch)} items."
                    )
                images, pid, camid, index = batch
                images = images.to(device, non_blocking=True).float()
                extra = ({"camera_ids": torch.as_tensor(camid).to(device)}
                         if "camera_ids" in getattr(model, "inputs", ()) else {})  # camera-aware models (SIE)
                emb = model(images, **extra)
                if flip:
                    emb = F.normalize((emb + model(torch.flip(images, dims=[3]), **extra)) / 2.0, dim=1)
                feats.append(emb.detach().float().cpu().numpy())
                pids.append(np.asarray(pid).reshape(-1))
                camids.append(np.asarray(camid).reshape(-1))
                indices.append(np.asarray(index).reshape(-1))
    finally:
        model.train(was_training)
    if not feats:
        raise InvalidInputError("The loader yielded no images, so there is nothing to evaluate.")
    return (
        np.concatenate(feats).astype(np.float32, copy=False),
        np.concatenate(pids).astype(np.int64),
        np.concatenate(camids).astype(np.int64),
        np.concatenate(indices).astype(np.int64),
    )


def compute_distance_matrix(qf: np.ndarray, gf: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Query x gallery distances (float32): squared Euclidean (``euclidean``) or 1 - cosine.

    ``euclidean`` is squared (same ranking as Euclidean; what re-ranking expects).
    """
    qf = np.asarray(qf, dtype=np.float32)
    gf = np.asarray(gf, dtype=np.float32)
    if qf.ndim != 2 or gf.ndim != 2 or qf.shape[1] != gf.shape[1]:
        raise InvalidInputError(
            f"Feature matrices must be 2-D with the same width, got query {qf.shape} and gallery {gf.shape}."
        )
    if metric == "euclidean":
        q_sq = np.einsum("ij,ij->i", qf, qf)[:, None]
        g_sq = np.einsum("ij,ij->i", gf, gf)[None, :]
        dist = q_sq + g_sq - 2.0 * (qf @ gf.T)
        return np.maximum(dist, 0.0, out=dist).astype(np.float32, copy=False)
    if metric == "cosine":
        qn = qf / np.maximum(np.linalg.norm(qf, axis=1, keepdims=True), 1e-12)
        gn = gf / np.maximum(np.linalg.norm(gf, axis=1, keepdims=True), 1e-12)
        return (1.0 - qn @ gn.T).astype(np.float32, copy=False)
    raise InvalidInputError(f"Unknown distance metric '{metric}'; choose from {', '.join(METRICS)}.")
