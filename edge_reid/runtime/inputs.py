"""The extra graph inputs a model may take besides the images (``ModelMeta.inputs``).

``"camera_ids"``: int64, one 0-based camera index per crop (FusionReID's camera embedding);
``"modality"``: int64, 0 = visible, 1 = infrared (visible-infrared models). A model that names
one needs it for every call; values are checked here, so no backend sees a bad index.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

import numpy as np

from edge_reid.errors import InvalidInputError
from edge_reid.metadata import ModelMeta

_HOW = {"camera_ids": "needs a camera index per crop (the input 'camera_ids': pass camera_ids=... to embed; "
                      "--camera-index NAME=INT sets a source's camera in edge-reid stream)",
        "modality": "needs the input 'modality' for every crop (0 visible, 1 infrared: pass modality=... to embed; "
                    "--infrared NAME marks an infrared source in edge-reid stream)"}


def extra_inputs(meta: ModelMeta, count: int, given: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """The checked int64 arrays (length ``count``) for every extra input ``meta.inputs`` names.

    ``given`` maps input names to a sequence, an array or one int (broadcast to the batch);
    names the model does not take are ignored.
    """
    feeds: Dict[str, np.ndarray] = {}
    for name in tuple(meta.inputs)[1:]:
        value = given.get(name)
        if value is None:
            raise InvalidInputError(f"Model '{meta.model}' {_HOW.get(name, repr(name))}, and none was given.")
        feeds[name] = _checked(name, value, count, meta)
    return feeds


def _checked(name: str, value: Any, count: int, meta: ModelMeta) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = np.full(count, arr)
    if arr.dtype.kind not in "iu" or arr.shape != (count,):
        raise InvalidInputError(f"'{name}' has {arr.size} values for {count} crops; it must be {count} integers, "
                                f"one per crop (got {arr.dtype} of shape {arr.shape}).")
    upper = int(meta.model_options.get("num_cameras", 0)) if name == "camera_ids" else 2 if name == "modality" else 0
    if count and (int(arr.min()) < 0 or (upper and int(arr.max()) >= upper)):
        bound = f"0..{upper - 1}" if upper else "non-negative values"
        raise InvalidInputError(
            f"{name} of model '{meta.model}' must lie in {bound}, got {int(arr.min())}..{int(arr.max())}."
        )
    return np.ascontiguousarray(arr, dtype=np.int64)


def example_ids(meta: ModelMeta, count: int) -> Dict[str, np.ndarray]:
    """Valid ids for every extra input, cycling through their values (parity, calibration, timing).

    Camera ids run 0, 1, ..., num_cameras - 1, 0, ...; modality alternates 0, 1.
    """
    cycle = {"camera_ids": max(1, int(meta.model_options.get("num_cameras", 1))), "modality": 2}
    return {name: np.arange(count, dtype=np.int64) % cycle.get(name, 1) for name in tuple(meta.inputs)[1:]}
