"""Training configs: YAML files with ``_base_`` inheritance, ``--set`` overrides, the resolved file.

A config is a nested dict checked against :data:`~edge_reid.engine.config_schema.SCHEMA` (every
section and key with its type and default; :mod:`edge_reid.engine.config_schema`), so a key the
schema does not know, or a value of the wrong type, is an error that names the key by its dotted
name (``train.epochs``). :func:`load_config` resolves a file's ``_base_`` chain, fills the
defaults, applies the overrides and validates.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from edge_reid.engine.config_schema import SCHEMA, Config, Field, defaults, validate
from edge_reid.engine.yaml_file import read_yaml
from edge_reid.errors import InvalidInputError
from edge_reid.utils.atomic import atomic_write_text

ConfigSource = Union[str, Path, Mapping[str, Any]]

BASE_KEY = "_base_"


def load_config(source: ConfigSource, overrides: Iterable[str] = ()) -> Config:
    """Resolve a config file (or dict) with its ``_base_`` chain, apply ``key=value`` overrides, validate.

    Missing keys take the schema defaults; the result is a complete, validated dict.
    """
    if isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))
        if BASE_KEY in raw:
            raise InvalidInputError("A config given as a dict cannot use '_base_'; give a file path instead.")
        name = raw.get("name")
    else:
        path = Path(source)
        raw = _load_with_bases(path, ())
        name = raw.get("name") or path.stem
    cfg = _merge(defaults(), raw)
    for item in overrides:
        apply_override(cfg, item)
    cfg["name"] = cfg.get("name") or name or "config"
    validate(cfg)
    return cfg


def _load_with_bases(path: Path, chain: Tuple[Path, ...]) -> Config:
    """Read ``path`` and merge it over its ``_base_`` files (paths relative to ``path``)."""
    resolved = path.resolve()
    if resolved in chain:
        raise InvalidInputError(f"Config file {path} inherits from itself through '_base_'.")
    data = read_yaml(path)
    bases = data.pop(BASE_KEY, None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise InvalidInputError(f"Key '_base_' in config file {path} must be a file name or a list of them.")
    merged: Config = {}
    for base in bases:
        merged = _merge(merged, _load_with_bases(path.parent / base, chain + (resolved,)))
    return _merge(merged, data)


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> Config:
    """Recursive dict merge: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(cfg: Config, item: str) -> None:
    """Apply one ``dotted.key=value`` override in place; the value is parsed as YAML."""
    if "=" not in item:
        raise InvalidInputError(f"Override '{item}' must look like key.sub=value.")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        raise InvalidInputError(f"The value of override '{key}' is not valid YAML: {text!r}.") from None
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise InvalidInputError(f"Override '{item}' has an empty key.")
    node: Any = cfg
    schema: Any = SCHEMA
    for depth, part in enumerate(parts[:-1]):
        dotted = ".".join(parts[: depth + 1])
        if isinstance(schema, dict):
            if part not in schema:
                raise InvalidInputError(f"Unknown config key '{dotted}'.")
            schema = schema[part]
        elif not (isinstance(schema, Field) and schema.free):
            raise InvalidInputError(f"Config key '{dotted}' is a value, not a section.")
        if node.get(part) is None and isinstance(schema, Field) and schema.free:
            node[part] = {}
        node = node.get(part)
        if not isinstance(node, dict):
            raise InvalidInputError(f"Config key '{dotted}' is not a section, so '{key}' cannot be set.")
    last = parts[-1]
    if isinstance(schema, dict) and last not in schema:
        raise InvalidInputError(f"Unknown config key '{key}'.")
    node[last] = value



def save_config(cfg: Mapping[str, Any], path: Union[str, Path]) -> Path:
    """Write the resolved config as YAML atomically (the run folder's ``config.yaml``)."""
    atomic_write_text(path, yaml.safe_dump(plain(cfg), sort_keys=False, default_flow_style=None))
    return Path(path)


def plain(obj: Any) -> Any:
    """Dicts/lists/tuples of plain values (tuples become lists, paths strings): what YAML and
    weights-only checkpoints store."""
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dump_overrides(cfg: Mapping[str, Any]) -> List[str]:
    """The config as flat ``key=value`` strings (for logs and tensorboard hparams)."""
    out: List[str] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, Mapping) and value:
                walk(value, f"{prefix}{key}.")
            else:
                out.append(f"{prefix}{key}={value}")

    walk(cfg, "")
    return out


def resolve_sequence(values: Optional[Sequence[str]]) -> List[str]:
    """Flatten ``--set a=1 b=2 --set c=3`` style argparse values."""
    out: List[str] = []
    for item in values or ():
        out.extend([item] if isinstance(item, str) else list(item))
    return out


__all__ = ["BASE_KEY", "SCHEMA", "Config", "ConfigSource", "Field", "apply_override", "defaults", "dump_overrides",
           "load_config", "plain", "resolve_sequence", "save_config", "validate"]
