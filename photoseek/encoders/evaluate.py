"""Embed a split and score it: the same code validates during training and runs `photoseek eval`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from photoseek.encoders.metrics import retrieval_metrics
from photoseek.encoders.model import JointModel
from photoseek.encoders.tokenizer import Tokenizer


def flatten_captions(captions: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """[[c, c], [c]] -> ([c, c, c], caption-to-image index [0, 0, 1])."""
    texts = [c for caps in captions for c in caps]
    owner = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
    return texts, owner


@torch.inference_mode()
def embed_split(model: JointModel, tokenizer: Tokenizer, images: np.ndarray | None,
                captions: Sequence[Sequence[str]], batch_size: int = 256, device: str | torch.device = "cpu"
                ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """uint8 images (N, S, S, 3) and their captions -> (image emb (N, D) or None, caption emb (M, D), owner (M,))."""
    was_training = model.training
    model.eval()
    try:
        texts, owner = flatten_captions(captions)
        txt = [model.encode_text(tokenizer(texts[i : i + batch_size]).to(device)).float().cpu()
               for i in range(0, len(texts), batch_size)]
        img = None
        if images is not None and model.cfg.has_images:
            img = [model.encode_image(torch.from_numpy(np.array(images[i : i + batch_size]))
                                      .permute(0, 3, 1, 2).to(device)).float().cpu()
                   for i in range(0, len(images), batch_size)]
            img = torch.cat(img).numpy()
        return img, torch.cat(txt).numpy(), owner
    finally:
        model.train(was_training)


def evaluate_split(model: JointModel, tokenizer: Tokenizer, images: np.ndarray | None,
                   captions: Sequence[Sequence[str]], device: str | torch.device = "cpu") -> dict:
    """Recall@1/5/10 and median rank both ways (or caption-to-caption for caption-only models)."""
    img, txt, owner = embed_split(model, tokenizer, images, captions, device=device)
    return retrieval_metrics(img, txt, owner)


def format_metrics(m: dict) -> str:
    """One readable line, e.g. 't2i R@1 81.2 R@5 97.0 R@10 99.3 medr 1 | i2t ... | rsum 560.1'."""
    parts = []
    for key in ("t2i", "i2t", "t2t"):
        if key in m:
            d = m[key]
            parts.append(f"{key} R@1 {d['r1']:.1f} R@5 {d['r5']:.1f} R@10 {d['r10']:.1f} medr {d['medr']:g}")
    parts.append(f"rsum {m['rsum']:.1f}")
    return " | ".join(parts)
