"""The embed stage: a callable class that loads the model once and turns decoded batches into vectors."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from photoseek.encoders.encoder import Encoder
from photoseek.indexer.records import IMAGE, OK, REASON, DETAIL, VECTOR, Reason


class Embedder:
    """Adds `vector` (B, D) float32 to a decoded batch and drops the pixels; failed rows get zero vectors.

    Under Ray Data this is the actor class of a fixed-size pool, so `__init__` (loading the model) runs
    once per actor and the model stays resident, on the GPU when the actor was given one.
    """

    def __init__(self, model_dir: str, device: str | None = None, threads: int | str | None = None):
        """`threads`: torch's CPU threads; "auto" = half of this node's cores (decoding takes the rest)."""
        if threads == "auto":
            threads = max(1, (os.cpu_count() or 2) // 2)
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        self.encoder = Encoder.load(model_dir, device=device)
        if not self.encoder.has_images:
            raise ValueError(f"model {self.encoder.model_id} is caption-only (no image tower); it cannot index photos")

    @property
    def model_id(self) -> str:
        return self.encoder.model_id

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        ok = np.asarray(batch[OK], dtype=bool).copy()
        out = {k: v for k, v in batch.items() if k != IMAGE}
        vectors = np.zeros((len(ok), self.encoder.dim), dtype=np.float32)
        if ok.any():
            try:
                vectors[ok] = self.encoder.encode_images(np.asarray(batch[IMAGE])[ok])
            except Exception as exc:  # one bad batch is reported row by row; the run goes on
                reasons, details = list(batch[REASON]), list(batch[DETAIL])
                for i in np.flatnonzero(ok):
                    reasons[i], details[i] = Reason.EMBED_FAILED.value, f"{type(exc).__name__}: {exc}"
                ok[:] = False
                out[REASON], out[DETAIL] = reasons, details
        out[OK], out[VECTOR] = ok, vectors
        return out
