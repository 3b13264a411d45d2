"""Typed model configuration: what a preset file holds and what a model directory saves."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class TextConfig:
    """Text tower. kind: "bow" (mean of word embeddings), "bilstm", "transformer"."""

    kind: str = "transformer"
    width: int = 256  # token embedding / hidden size
    layers: int = 2
    heads: int = 4
    context_length: int = 32  # captions are padded or cut to this many tokens
    dropout: float = 0.0


@dataclass
class VisionConfig:
    """Image tower. kind: "none" (caption-only model), "cnn" (small plain CNN), "resnet" (torchvision, no weights)."""

    kind: str = "resnet"
    image_size: int = 64  # square side, after resize-and-pad
    width: int = 64  # channels of the first stage
    layers: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # blocks per stage
    stem: str = "imagenet"  # "imagenet" (7x7/2 + maxpool: /4), "half" (3x3/2: /2) or "small" (3x3/1: /1)
    pool: str = "avg"  # "avg" (global average) or "flatten" (keeps the coarse layout of the last map)


@dataclass
class LossConfig:
    """kind: "infonce" (symmetric, learned temperature), "cosine" (1 - cos on pairs, hinge on negatives), "triplet" (VSE++)."""

    kind: str = "infonce"
    init_temperature: float = 0.07
    margin: float = 0.2  # triplet margin; cosine: negatives only cost above this similarity
    negative_weight: float = 1.0  # cosine: 0 gives the seed's pure 1 - cos(S, S^)


@dataclass
class AugmentConfig:
    """Training-time augmentation. Hue is never jittered: colour words must stay true."""

    crop_scale: float = 0.8  # random resized crop keeps at least this fraction of the area
    flip: float = 0.5  # probability of a horizontal flip (captions swap "left" and "right")
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    token_dropout: float = 0.1  # probability of replacing a caption token with <unk>


@dataclass
class OptimConfig:
    batch_size: int = 128  # images per step (over all workers)
    captions_per_image: int = 1  # captions drawn per image each step (InfoNCE only); more text signal per image
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    epochs: int = 30
    min_vocab_freq: int = 2


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; presets are files of this shape."""

    name: str = "clip-resnet"
    embed_dim: int = 256
    text: TextConfig = field(default_factory=TextConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    description: str = ""

    @property
    def has_images(self) -> bool:
        return self.vision.kind != "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from a (possibly partial) dict; unknown keys are an error, not silently ignored."""
        return _build(cls, data, "model")


_NESTED = {"text": TextConfig, "vision": VisionConfig, "loss": LossConfig, "augment": AugmentConfig, "optim": OptimConfig}


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown key(s) in {where} config: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        sub = _NESTED.get(key) if cls is ModelConfig else None
        kwargs[key] = _build(sub, value or {}, f"{where}.{key}") if sub else value
    return cls(**kwargs)
