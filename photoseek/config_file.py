"""The YAML config file every subcommand reads: one section per command; command-line flags override it."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
DEFAULT_FILE = "photoseek.yaml"


def read_config(path: str | None) -> dict[str, Any]:
    """The whole file as a dict; `photoseek.yaml` in the working folder when no path is given and it exists."""
    if path is None:
        if not Path(DEFAULT_FILE).is_file():
            return {}
        path = DEFAULT_FILE
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections (train:, eval:, ...), got {type(data).__name__}")
    return data


def build_request(cls: type[T], config: dict[str, Any], section: str, flags: dict[str, Any]) -> T:
    """cls filled from the file's top level and `section`, then from flags that were given (not None)."""
    names = {f.name for f in fields(cls)}
    values: dict[str, Any] = {k: v for k, v in config.items() if k in names and not isinstance(v, dict)}
    part = config.get(section) or {}
    unknown = sorted(set(part) - names)
    if unknown:
        raise ValueError(f"unknown key(s) in config section {section!r}: {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    values.update(part)
    values.update({k: v for k, v in flags.items() if k in names and v is not None})
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING and f.name not in values]
    if missing:
        raise ValueError(f"{section}: missing required setting(s): {', '.join('--' + m.replace('_', '-') for m in missing)}")
    return cls(**values)


def section_value(config: dict[str, Any], section: str, key: str) -> Any:
    """One setting as a command would see it: the section's value, else the top level's."""
    part = config.get(section) or {}
    return part.get(key, config.get(key))
