"""The joint model: two towers, each projected into one L2-normalised embedding space."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from photoseek.encoders.config import ModelConfig
from photoseek.encoders.text import build_text_tower
from photoseek.encoders.vision import build_vision_tower

# Images enter as uint8 (B, 3, S, S); these bring them to roughly zero mean, unit variance.
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


class JointModel(nn.Module):
    """encode_image / encode_text map into the same (B, D) unit sphere; forward returns both and the scale."""

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.text = build_text_tower(cfg.text, vocab_size)
        self.text_proj = nn.Linear(self.text.out_dim, cfg.embed_dim, bias=False)
        self.vision = build_vision_tower(cfg.vision)
        self.image_proj = nn.Linear(self.vision.out_dim, cfg.embed_dim, bias=False) if self.vision else None
        # CLIP's learned temperature, stored as log(1 / T) so it stays positive.
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.loss.init_temperature)),
                                        requires_grad=cfg.loss.kind == "infonce")  # only InfoNCE learns it
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def normalize_pixels(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float (B, 3, S, S) -> standardised float."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        return (x - self.mean) / self.std

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        if self.vision is None:
            raise ValueError(f"model {self.cfg.name!r} has no image tower (caption-only)")
        feats = self.vision(self.normalize_pixels(images))  # (B, C)
        return F.normalize(self.image_proj(feats), dim=-1)  # (B, D)

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(self.text(ids)), dim=-1)  # (B, T) -> (B, D)

    def forward(self, images: torch.Tensor | None, ids: torch.Tensor, ids_b: torch.Tensor | None = None) -> dict:
        """Training forward. For caption-only models, ids_b holds a second caption of the same image."""
        out = {"text": self.encode_text(ids), "logit_scale": self.logit_scale.exp().clamp(max=100.0)}
        if images is not None:
            out["image"] = self.encode_image(images)
        if ids_b is not None:
            out["text_b"] = self.encode_text(ids_b)
        return out
