"""Named model presets: YAML files shipped in `presets/`, or any YAML path a user gives."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from photoseek.encoders.config import ModelConfig

_PRESET_DIR = "presets"


def list_presets() -> list[str]:
    """Names of the presets shipped with photoseek."""
    folder = resources.files("photoseek.encoders").joinpath(_PRESET_DIR)
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def get_preset(name_or_path: str) -> ModelConfig:
    """A shipped preset by name, or a preset YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text()
    else:
        res = resources.files("photoseek.encoders").joinpath(_PRESET_DIR, f"{name_or_path}.yaml")
        if not res.is_file():
            raise ValueError(f"unknown preset {name_or_path!r}; shipped presets: {', '.join(list_presets())}")
        text = res.read_text()
    data = yaml.safe_load(text) or {}
    data.setdefault("name", path.stem if path.suffix else name_or_path)
    return ModelConfig.from_dict(data)
