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
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Mapping, Tuple

from edge_reid.errors import InvalidInputError
from edge_reid.version import __version__

IMAGENET_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)
INPUT_FORMAT = "RGB float32 NCHW in [0,1]; mean/std normalisation inside the model"

#: The key under which the whole metadata JSON is stored in ONNX ``metadata_props``.
ONNX_METADATA_KEY = "edge_reid.meta"
#: graph inputs a model may take after the image batch: camera index (FusionReID's SIE) and
#: modality (0 visible, 1 infrared), both int64 of shape N
EXTRA_INPUTS = ("camera_ids", "modality")
#: largest accepted input side and embedding size (far beyond any ReID model; catches garbage)
_MAX_SIDE, _MAX_DIM = 16384, 1 << 20


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
    #: the graph inputs in order: "images" first, then any of EXTRA_INPUTS
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
        """Parse metadata read from an artifact; missing keys, wrong types and out-of-range values
        (a tampered file) are a clear error here rather than a crash mid-stream."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(f"The {source} holds no model metadata object.")
        known = {f.name for f in fields(cls)}
        required = {"model", "input_size", "embedding_dim", "num_ids"}
        missing = sorted(required - set(data))
        if missing:
            raise InvalidInputError(f"The {source} lacks the model metadata keys {missing}.")
        values = {k: v for k, v in data.items() if k in known}

        def bad(key: str, what: str) -> InvalidInputError:
            return InvalidInputError(f"The {source} has an invalid '{key}' ({values[key]!r}); it must be {what}.")

        for key in ("model", "dataset", "input_format", "toolkit_version"):
            if key in values and not (isinstance(values[key], str) and (values[key] or key != "model")):
                raise bad(key, "a string" if key != "model" else "a non-empty string")
        size = values["input_size"]
        if not (_is_sequence(size) and len(size) == 2 and all(_is_int(v, 1, _MAX_SIDE) for v in size)):
            raise bad("input_size", f"[height, width] of two integers from 1 to {_MAX_SIDE}")
        values["input_size"] = (int(size[0]), int(size[1]))
        if not _is_int(values["embedding_dim"], 1, _MAX_DIM):
            raise bad("embedding_dim", f"an integer from 1 to {_MAX_DIM}")
        if not _is_int(values["num_ids"], 0, None):
            raise bad("num_ids", "a non-negative integer")
        values["embedding_dim"], values["num_ids"] = int(values["embedding_dim"]), int(values["num_ids"])
        for key in ("mean", "std"):
            if key in values:
                if not (_is_sequence(values[key]) and len(values[key]) == 3
                        and all(_is_float(v, positive=(key == "std")) for v in values[key])):
                    raise bad(key, "three finite numbers" + (" above 0" if key == "std" else ""))
                values[key] = tuple(float(v) for v in values[key])
        if "model_options" in values and not isinstance(values["model_options"], dict):
            raise bad("model_options", "an object")
        if "inputs" in values:
            values["inputs"] = parse_inputs(values["inputs"], source)
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


def parse_inputs(value: Any, source: str = "metadata") -> Tuple[str, ...]:
    """Validate the ``inputs`` field: "images" first, then distinct names from EXTRA_INPUTS."""
    ok = _is_sequence(value) and len(value) >= 1 and all(isinstance(v, str) for v in value)
    if ok:
        names = tuple(value)
        ok = names[0] == "images" and len(set(names)) == len(names) and all(n in EXTRA_INPUTS for n in names[1:])
    if not ok:
        raise InvalidInputError(
            f"The {source} has invalid 'inputs' ({value!r}); it must list \"images\" first, then any of "
            f"{', '.join(EXTRA_INPUTS)}, each once.")
    return names


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def _is_int(value: Any, low: int, high: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))


def _is_float(value: Any, positive: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    return not (positive and value <= 0)
