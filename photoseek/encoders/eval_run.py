"""`photoseek eval`: score a model directory on one split of a dataset, optionally draw its embedding map."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from photoseek.encoders.data.formats import load_captions
from photoseek.encoders.data.images import decode_many
from photoseek.encoders.encoder import Encoder
from photoseek.encoders.evaluate import embed_split
from photoseek.encoders.metrics import retrieval_metrics


@dataclass
class EvalRequest:
    """The `photoseek eval` entry point's settings (YAML section `eval`, flags override)."""

    model: str
    data: str
    split: str = "test"
    limit: int | None = None  # at most this many images of the split
    plot: str | None = None  # a PNG path for the embedding-space map
    quiet: bool = False


def evaluate(req: EvalRequest) -> dict:
    """-> {"i2t": {...}, "t2i": {...}, "rsum", "images", "captions", "skipped"} (or "t2t" for caption-only models)."""
    encoder = Encoder.load(req.model)
    captions = load_captions(req.data)
    items = captions.split(req.split)
    if not items:
        raise ValueError(f"{req.data} has no {req.split!r} split ({captions.summary()})")
    items = items[: req.limit] if req.limit else items
    skipped: list[tuple[Path, str]] = []
    images = None
    if encoder.has_images:
        images, skipped = decode_many([it.path for it in items], encoder.image_size, threads=os.cpu_count() or 2,
                                      label=f"decoding {req.split} images", show_progress=not req.quiet)
        bad = {p for p, _ in skipped}
        items = [it for it in items if it.path not in bad]
    img, txt, owner = embed_split(encoder.model, encoder.tokenizer, images, [it.captions for it in items],
                                  device=encoder.device)
    result = retrieval_metrics(img, txt, owner)
    result.update(images=len(items), captions=int(len(txt)), skipped=[[str(p), r] for p, r in skipped],
                  model_id=encoder.model_id, split=req.split)
    if req.plot:
        from photoseek.encoders.plots import plot_embedding_map

        title = f"{encoder.model_id}: {req.split} split, {len(items)} images, {len(txt)} captions (PCA)"
        plot_embedding_map(img, txt, Path(req.plot), title=title)
        result["plot"] = str(req.plot)
    return result

