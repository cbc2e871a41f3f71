"""Configuration as dataclasses: saved as JSON/YAML next to every output, hashed to key cached features."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a dataclass (nested dataclasses included)."""
    return dataclasses.asdict(config)


def config_hash(payload: Any, length: int = 10) -> str:
    """A short stable hash of a config (dataclass or JSON-able), used to key cached features."""
    if dataclasses.is_dataclass(payload):
        payload = to_dict(payload)
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def from_dict(cls: type, data: dict[str, Any], *, check_types: bool = False):
    """Build a dataclass from a dict, refusing unknown keys so a typo in a config file is caught; with
    `check_types`, also values of the wrong kind (`"crops": 1.2` for a mapping), which would otherwise fail deep
    inside a run as a TypeError."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    from .errors import ViperError

    if unknown:
        raise ViperError(f"unknown {cls.__name__} option(s): {', '.join(sorted(unknown))}")
    hints = typing.get_type_hints(cls) if check_types else {}
    for name, value in data.items():
        if name in hints and not _fits(value, hints[name]):
            raise ViperError(f"option {name} must be {_describe(hints[name])}, got {value!r}")
    return cls(**data)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON/YAML (or given in Python) is of the kind a config field declares; kinds not
    listed here (arrays, class variables) are taken as they are."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, (str, os.PathLike))
    if hint is list or origin is list:
        return isinstance(value, (list, tuple)) and all(_fits(item, args[0]) for item in value if args)
    if hint is dict or origin is dict:
        return isinstance(value, dict) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items()
                                               if args)
    return True


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text", type(None): "null"}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in args)
    if hint is list or origin is list:
        return "a list" + (f" of {_describe(args[0])}" if args else "")
    if hint is dict or origin is dict:
        return "a mapping" + (f" of {_describe(args[0])} to {_describe(args[1])}" if args else "")
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def save_config(config: Any, path: Path) -> None:
    """Write a config as JSON or YAML (by suffix), atomically."""
    from .atomic import atomic_write_text

    data = to_dict(config) if dataclasses.is_dataclass(config) else config
    if path.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2, default=str)
    atomic_write_text(path, text)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON or YAML config file into a dict; a file that is missing, unreadable or not a mapping of
    settings is a ViperError naming it."""
    from .errors import ViperError

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ViperError(f"{path}: cannot read the config file ({error.strerror or error})") from error
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as error:
            raise ViperError(f"{path}: not valid YAML: {error}") from error
    else:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ViperError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(data, dict):
        raise ViperError(f"{path}: expected a mapping of settings (name: value), got a {type(data).__name__}")
    return data
