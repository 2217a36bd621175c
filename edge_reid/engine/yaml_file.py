"""Reading one YAML config file: UTF-8 only, safe types only, no key given twice.

PyYAML silently keeps the last of two equal keys in a mapping; here that is an error naming
the key and both lines, like a non-UTF-8 file or malformed YAML (one sentence each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import yaml

from edge_reid.errors import InvalidInputError


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: Dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key '{key}' is given twice (lines {seen[key]} and {line})", key_node.start_mark)
        except TypeError:  # an unhashable key: the default constructor reports it
            continue
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _at_line(exc: yaml.YAMLError) -> str:
    """`` at line N`` where PyYAML marked the problem, else nothing."""
    where = getattr(exc, "problem_mark", None)
    return f" at line {where.line + 1}" if where is not None else ""


def read_yaml(path: Path) -> Dict[str, Any]:
    """Read one YAML mapping; a missing, non-UTF-8 or malformed file (duplicate keys included) is a clear error."""
    if not path.is_file():
        raise InvalidInputError(f"Config file {path} does not exist.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"Config file {path} is not UTF-8 text (undecodable byte at offset {exc.start}).") from None
    except OSError as exc:
        raise InvalidInputError(f"Config file {path} cannot be read ({exc.strerror or exc}).") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.constructor.ConstructorError as exc:
        raise InvalidInputError(f"Config file {path} is not valid YAML{_at_line(exc)}: {exc.problem}.") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"Config file {path} is not valid YAML{_at_line(exc)}.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInputError(f"Config file {path} must hold a mapping of sections, not a {type(data).__name__}.")
    return data
