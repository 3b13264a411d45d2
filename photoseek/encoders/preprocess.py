"""Image preprocessing shared by training, evaluation, indexing and serving: resize, pad to a square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

PAD_COLOR = (0, 0, 0)


def fit_square(image: Image.Image, size: int) -> np.ndarray:
    """Resize so the long side is `size`, pad the short side symmetrically: -> uint8 (size, size, 3)."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = image.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=2.0)
    canvas = Image.new("RGB", (size, size), PAD_COLOR)
    canvas.paste(resized, ((size - nw) // 2, (size - nh) // 2))
    return np.array(canvas, dtype=np.uint8)  # a writable copy: torch warns on read-only arrays


def load_square(path: str | Path, size: int) -> np.ndarray:
    """Open a file (EXIF orientation applied, JPEG decoded at reduced size when it can) -> uint8 (size, size, 3)."""
    with Image.open(path) as im:
        if im.format == "JPEG":
            im.draft("RGB", (size, size))  # decode at 1/2, 1/4, 1/8 scale when the target is small
        im = ImageOps.exif_transpose(im)
        return fit_square(im, size)


def to_chw(batch: np.ndarray) -> np.ndarray:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) uint8, the layout the model takes."""
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
