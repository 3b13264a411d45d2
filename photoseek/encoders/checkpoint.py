"""The model directory: config.yaml, weights.pt, vocab.json, meta.json. Loading it needs nothing else."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import torch
import yaml

from photoseek.encoders.config import ModelConfig
from photoseek.encoders.model import JointModel
from photoseek.encoders.tokenizer import Vocabulary

CONFIG, WEIGHTS, VOCAB, META = "config.yaml", "weights.pt", "vocab.json", "meta.json"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_model_dir(out: Path, model: JointModel, vocab: Vocabulary, meta: dict[str, Any] | None = None) -> str:
    """Write a complete model directory; returns the model id ("<preset>-<weights hash>")."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    weights = buf.getvalue()
    model_id = f"{model.cfg.name}-{hashlib.sha256(weights).hexdigest()[:12]}"
    full_meta = {"model_id": model_id, "embed_dim": model.cfg.embed_dim, "image_size": model.cfg.vision.image_size,
                 "has_images": model.cfg.has_images, "vocab_size": len(vocab), "torch": torch.__version__,
                 **(meta or {})}
    # Weights last-but-one and meta last: a reader that finds meta.json finds a complete directory.
    _atomic_write(out / CONFIG, yaml.safe_dump(model.cfg.to_dict(), sort_keys=False).encode())
    _atomic_write(out / VOCAB, json.dumps({"words": vocab.words}).encode())
    _atomic_write(out / WEIGHTS, weights)
    _atomic_write(out / META, json.dumps(full_meta, indent=2).encode())
    return model_id


def read_meta(model_dir: Path) -> dict[str, Any]:
    path = Path(model_dir) / META
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} is not a photoseek model directory (no {META}); train one with `photoseek train`")
    return json.loads(path.read_text())


def load_model_dir(model_dir: Path, device: str | torch.device = "cpu") -> tuple[JointModel, Vocabulary, dict]:
    """Rebuild the model from its directory (weights loaded with weights_only=True)."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    cfg = ModelConfig.from_dict(yaml.safe_load((model_dir / CONFIG).read_text()))
    vocab = Vocabulary.load(model_dir / VOCAB)
    model = JointModel(cfg, len(vocab))
    state = torch.load(model_dir / WEIGHTS, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.to(device).eval(), vocab, meta
