"""YAML files loaded into frozen dataclasses.

Every threshold of aptrack is a field of a frozen dataclass with its default;
YAML files override them. Unknown keys are an error, so a typo never passes
silently. A field whose default is itself a dataclass is a nested section.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from aptrack.core.errors import ConfigError


def read_yaml(path: Path) -> Any:
    """Parsed YAML of ``path``; a missing or malformed file is a :class:`ConfigError`."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None


def merged(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``: mappings merge key by key (recursively), anything else replaces.

    Neither input is changed.
    """
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merged(base[key], value) if key in base else value
        return out
    return override


def _section(field: dataclasses.Field):
    """The dataclass type of a nested section field, else None."""
    factory = field.default_factory
    return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None


def build_config(cls, data: dict[str, Any] | None, where: str):
    """Build the frozen dataclass ``cls`` from a mapping (lists become tuples).

    Raises
    ------
    ConfigError
        On a key ``cls`` does not have (the message lists the allowed ones) or a
        section that is not a mapping; ``where`` names the file and section.
    """
    if data is None:
        return cls()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                          f"allowed: {', '.join(sorted(fields))}")
    values = {}
    for key, value in data.items():
        sub = _section(fields[key])
        if sub is not None:
            value = build_config(sub, value, f"{where}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)

