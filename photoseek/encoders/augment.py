"""Training augmentations on uint8 image batches and on captions."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from photoseek.encoders.config import AugmentConfig
from photoseek.encoders.tokenizer import swap_left_right


def random_resized_crop(images: torch.Tensor, min_scale: float, gen: torch.Generator) -> torch.Tensor:
    """Per-image crop of at least `min_scale` of the area (aspect 3/4..4/3), resized back. (B, 3, S, S) float."""
    if min_scale >= 1.0:
        return images
    b, _, s, _ = images.shape
    area = torch.empty(b).uniform_(min_scale, 1.0, generator=gen)
    ratio = torch.exp(torch.empty(b).uniform_(-0.2877, 0.2877, generator=gen))  # log(3/4)..log(4/3)
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * (1 - w) + w / 2) * 2 - 1  # crop centre in [-1, 1]
    cy = (torch.rand(b, generator=gen) * (1 - h) + h / 2) * 2 - 1
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(images: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation; never hue, so "red" stays red. (B, 3, S, S) in [0, 1]."""
    b = images.shape[0]

    def factor(strength: float) -> torch.Tensor:
        return torch.empty(b, 1, 1, 1).uniform_(1 - strength, 1 + strength, generator=gen)

    x = images * factor(cfg.brightness)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * factor(cfg.contrast) + mean
    gray = x.mean(1, keepdim=True)
    x = (x - gray) * factor(cfg.saturation) + gray
    return x.clamp(0.0, 1.0)


def augment_batch(images: torch.Tensor, captions: list[str], cfg: AugmentConfig, gen: torch.Generator
                  ) -> tuple[torch.Tensor, list[str]]:
    """uint8 (B, 3, S, S) + k captions per image (grouped) -> float [0, 1] images and captions, flipped together."""
    x = images.float() / 255.0
    x = random_resized_crop(x, cfg.crop_scale, gen)
    flip = torch.rand(x.shape[0], generator=gen) < cfg.flip
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    per_image = len(captions) // x.shape[0]  # captions come grouped by image
    flipped = flip.repeat_interleave(per_image).tolist()
    captions = [swap_left_right(c) if f else c for c, f in zip(captions, flipped)]
    return color_jitter(x, cfg, gen), captions


def token_dropout(ids: torch.Tensor, p: float, unk_id: int, gen: torch.Generator) -> torch.Tensor:
    """Replace real tokens by <unk> with probability p. ids: (B, T)."""
    if p <= 0:
        return ids
    drop = (torch.rand(ids.shape, generator=gen) < p) & (ids != 0)
    return ids.masked_fill(drop, unk_id)


def pick_captions(captions: list[tuple[str, ...]], rng: random.Random) -> list[str]:
    """One caption per image, drawn afresh each epoch."""
    return [rng.choice(c) for c in captions]
