"""Model metadata that travels with every artifact (checkpoint, ONNX, engine side file).

Nothing is ever inferred from a file name: a checkpoint, an ONNX model and an engine each
carry a :class:`ModelMeta`, and every loader reads it from there.

Input convention (the same for every artifact): an RGB float32 batch N x 3 x H x W with
values in [0, 1]. Mean/std normalisation happens inside the model (its first layer), the
one place it happens; ``mean`` and ``std`` are recorded here so that a reader knows what
the model does, not so that it repeats it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Tuple

from edge_reid.errors import InvalidInputError
from edge_reid.version import __version__

IMAGENET_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)
INPUT_FORMAT = "RGB float32 NCHW in [0,1]; mean/std normalisation inside the model"

#: The key under which the whole metadata JSON is stored in ONNX ``metadata_props``.
ONNX_METADATA_KEY = "edge_reid.meta"


@dataclass
class ModelMeta:
    """What a reader of any artifact needs to know to use the model correctly."""

    model: str
    input_size: Tuple[int, int]  # (height, width)
    embedding_dim: int
    num_ids: int
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    dataset: str = "unknown"
    model_options: Dict[str, Any] = field(default_factory=dict)
    input_format: str = INPUT_FORMAT
    toolkit_version: str = __version__
    #: the graph inputs in order: "images" first, then optionally "camera_ids" (int64, N,
    #: 0-based camera index) and/or "modality" (int64, N, 0 visible / 1 infrared)
    inputs: Tuple[str, ...] = ("images",)

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["inputs"] = list(self.inputs)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "metadata") -> "ModelMeta":
        """Parse metadata read from an artifact; missing or unknown keys are a clear error."""
        known = {f.name for f in fields(cls)}
        required = {"model", "input_size", "embedding_dim", "num_ids"}
        missing = sorted(required - set(data))
        if missing:
            raise InvalidInputError(f"The {source} lacks the model metadata keys {missing}.")
        values = {k: v for k, v in data.items() if k in known}
        values["input_size"] = tuple(int(v) for v in values["input_size"])
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        values["inputs"] = _parse_inputs(values.get("inputs", ("images",)), source)
        values["embedding_dim"] = int(values["embedding_dim"])
        values["num_ids"] = int(values["num_ids"])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str, source: str = "metadata") -> "ModelMeta":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"The {source} is not valid JSON ({exc.msg}).") from None
        if not isinstance(data, dict):
            raise InvalidInputError(f"The {source} is not a JSON object.")
        return cls.from_dict(data, source)


#: The names a graph input may have besides "images".
EXTRA_INPUTS: Tuple[str, ...] = ("camera_ids", "modality")


def _parse_inputs(value: Any, source: str) -> Tuple[str, ...]:
    """``inputs`` read from an artifact: "images" first, then known extra names, no repeats."""
    names = tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()
    if not names or names[0] != "images" or len(set(names)) != len(names) or any(n not in EXTRA_INPUTS for n in names[1:]):
        raise InvalidInputError(
            f"The {source} has invalid model inputs {value!r}; expected 'images' followed by any of {', '.join(EXTRA_INPUTS)}."
        )
    return names
