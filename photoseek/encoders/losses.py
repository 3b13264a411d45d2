"""Losses over a batch of matched pairs (a[i] belongs with b[i]); all inputs are L2-normalised (B, D)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from photoseek.encoders.config import LossConfig


def infonce(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP): cross-entropy over scaled similarities, both directions.

    b may hold k rows per row of a, grouped (b[i*k : (i+1)*k] belong to a[i]): several captions per image.
    Each caption is classified among the images; each image scores all its captions as positives.
    """
    n, k = a.shape[0], b.shape[0] // a.shape[0]
    if b.shape[0] != n * k:
        raise ValueError(f"infonce needs k rows of b per row of a; got {a.shape[0]} and {b.shape[0]}")
    logits = scale * a @ b.t()  # (n, n*k)
    owner = torch.arange(n, device=a.device).repeat_interleave(k)  # (n*k,) the image of each caption
    t2i = F.cross_entropy(logits.t(), owner)
    positive = owner[None, :] == torch.arange(n, device=a.device)[:, None]  # (n, n*k)
    i2t = (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~positive, float("-inf")), 1)).mean()
    return 0.5 * (t2i + i2t)


def cosine(a: torch.Tensor, b: torch.Tensor, margin: float = 0.2, negative_weight: float = 1.0) -> torch.Tensor:
    """The seed's 1 - cos(S, S^) on pairs, plus a hinge on in-batch negatives above `margin`.

    With negative_weight=0 this is exactly the seed's loss, which any constant embedding minimises;
    the negative term is what keeps the space from collapsing.
    """
    sim = a @ b.t()  # (B, B)
    pos = 1.0 - sim.diagonal()
    off = ~torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    neg = (sim[off] - margin).clamp_min(0.0)
    return pos.mean() + negative_weight * (neg.mean() if neg.numel() else sim.new_zeros(()))


def triplet_hardest(a: torch.Tensor, b: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """VSE++: hinge on the hardest in-batch negative, in both directions."""
    sim = a @ b.t()  # (B, B)
    pos = sim.diagonal()
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    masked = sim.masked_fill(eye, float("-inf"))
    hard_b = masked.max(1).values  # hardest b for each a
    hard_a = masked.max(0).values  # hardest a for each b
    return ((margin + hard_b - pos).clamp_min(0) + (margin + hard_a - pos).clamp_min(0)).mean()


def contrastive_loss(cfg: LossConfig, a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The configured loss for matched rows of a and b."""
    if cfg.kind == "infonce":
        return infonce(a, b, scale)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"the {cfg.kind} loss takes one caption per image (set optim.captions_per_image: 1)")
    if cfg.kind == "cosine":
        return cosine(a, b, cfg.margin, cfg.negative_weight)
    if cfg.kind == "triplet":
        return triplet_hardest(a, b, cfg.margin)
    raise ValueError(f"unknown loss {cfg.kind!r}; choose infonce, cosine or triplet")


def model_loss(cfg: LossConfig, out: dict) -> torch.Tensor:
    """Image-text loss, or caption-caption for caption-only models."""
    other = out["image"] if "image" in out else out["text_b"]
    return contrastive_loss(cfg, other, out["text"], out["logit_scale"])
