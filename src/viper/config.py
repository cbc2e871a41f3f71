"""Configuration as dataclasses: saved as JSON/YAML next to every output, hashed to key cached features."""

from __future__ import annotations

import dataclasses
import hashlib
import json
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


def from_dict(cls: type, data: dict[str, Any]):
    """Build a dataclass from a dict, refusing unknown keys so a typo in a config file is caught."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        from .errors import ViperError

        raise ViperError(f"unknown {cls.__name__} option(s): {', '.join(sorted(unknown))}")
    return cls(**data)


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
