"""``--camera-index NAME=INT``: the camera id a camera-aware model gets for each source."""

from __future__ import annotations

from typing import Any, Dict, Sequence

from edge_reid.errors import InvalidInputError


def parse_camera_index(items: Sequence[str]) -> Dict[str, int]:
    """``["lobby=0", "gate=3"]`` -> ``{"lobby": 0, "gate": 3}``; malformed or repeated names are an error."""
    mapping: Dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            index = int(value)
        except ValueError:
            index = -1
        if not sep or not name or index < 0:
            raise InvalidInputError(f"--camera-index takes NAME=INT with a non-negative integer, got '{item}'.")
        if name in mapping:
            raise InvalidInputError(f"--camera-index names source '{name}' twice.")
        mapping[name] = index
    return mapping


def check_camera_index(meta: Any, mapping: Dict[str, int], sources: Sequence[str]) -> None:
    """Every source of a camera-aware model needs a camera id in range; names must be sources."""
    unknown = sorted(set(mapping) - set(sources))
    if unknown:
        raise InvalidInputError(f"--camera-index names {', '.join(unknown)}, which are not sources "
                                f"(sources: {', '.join(sources)}).")
    if "camera_ids" not in tuple(meta.inputs):
        return
    cameras = int(meta.model_options.get("num_cameras", 0))
    missing = [name for name in sources if name not in mapping]
    if missing:
        raise InvalidInputError(f"Model '{meta.model}' embeds the camera: give --camera-index NAME=INT "
                                f"(0..{cameras - 1}) for {', '.join(missing)}.")
    bad = sorted(name for name, index in mapping.items() if cameras and index >= cameras)
    if bad:
        raise InvalidInputError(f"--camera-index for {', '.join(bad)} is out of range: model '{meta.model}' "
                                f"knows cameras 0..{cameras - 1}.")
