"""photoseek's joint image-text model, in pure PyTorch. Imports neither Ray, Qdrant nor FastAPI.

Names are imported lazily so that `photoseek.encoders.data` (dataset loaders) does not pull in torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Encoder": "photoseek.encoders.encoder",
    "ModelConfig": "photoseek.encoders.config",
    "get_preset": "photoseek.encoders.registry",
    "list_presets": "photoseek.encoders.registry",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'photoseek.encoders' has no attribute {name!r}")
