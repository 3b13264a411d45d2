"""The layering rule: the model library imports no Ray, Qdrant or FastAPI, and its loaders need no torch."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_encoders_does_not_import_ray_qdrant_or_fastapi() -> None:
    loaded = _loaded_after("import photoseek.encoders as e; e.Encoder; import photoseek.encoders.eval_run, "
                           "photoseek.encoders.train.session, photoseek.encoders.train.trainer")
    assert "torch" in loaded
    assert not loaded & {"ray", "qdrant_client", "qdrant_edge", "fastapi"}


def test_dataset_loaders_do_not_import_torch() -> None:
    loaded = _loaded_after("import photoseek.encoders.data.formats, photoseek.encoders.data.synth")
    assert "torch" not in loaded and "ray" not in loaded
