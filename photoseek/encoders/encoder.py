"""The one interface the indexer and the search service know: images or texts in, unit vectors out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from photoseek.encoders.checkpoint import load_model_dir
from photoseek.encoders.model import JointModel
from photoseek.encoders.preprocess import fit_square, load_square
from photoseek.encoders.tokenizer import Tokenizer, Vocabulary


class Encoder:
    """A trained model ready for inference. Outputs are float32 numpy arrays (B, dim), L2-normalised."""

    def __init__(self, model: JointModel, vocab: Vocabulary, meta: dict, device: str | torch.device = "cpu",
                 batch_size: int = 256):
        self.model = model.to(device).eval()
        self.tokenizer = Tokenizer(vocab, model.cfg.text.context_length)
        self.meta = meta
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._encode_text = self.model.encode_text  # (b, t) ids -> (b, dim); trace_text()/fast_text() swap it
        self._text_numpy = None  # or the same on numpy arrays, for a path that needs no torch (ONNX Runtime)
        self.text_runtime = "eager"

    def trace_text(self) -> bool:
        """Encode texts through a frozen TorchScript trace of the text path (for serving: about half the
        time of one query on a CPU) when it reproduces the eager model on probe batches; True when traced."""
        from photoseek.encoders.trace import trace_text

        traced = trace_text(self.model, len(self.tokenizer.vocab), self.tokenizer.context_length, self.device)
        if traced is not None:
            self._encode_text, self._text_numpy, self.text_runtime = traced, None, "trace"
        return traced is not None

    def fast_text(self, runtimes: tuple[str, ...] = ("onnx", "trace")) -> dict[str, float]:
        """Encode texts with the fastest text path that reproduces the eager model: eager, a TorchScript trace
        or ONNX Runtime (CPU), timed here on a one-query batch (for serving). Sets `text_runtime`; returns each
        candidate's median ms a query."""
        from photoseek.encoders.text_runtime import best_text_path

        name, path, medians = best_text_path(self.model, len(self.tokenizer.vocab), self.tokenizer.context_length,
                                             self.device, runtimes)
        self._encode_text, self.text_runtime = path, name
        self._text_numpy = getattr(path, "run", None)  # ONNX Runtime takes and gives numpy: no torch per query
        return medians

    @classmethod
    def load(cls, model_dir: str | Path, device: str | None = None) -> "Encoder":
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, vocab, meta = load_model_dir(Path(model_dir), device)
        return cls(model, vocab, meta, device)

    @property
    def model_id(self) -> str:
        return self.meta["model_id"]

    @property
    def dim(self) -> int:
        return self.model.cfg.embed_dim

    @property
    def image_size(self) -> int:
        return self.model.cfg.vision.image_size

    @property
    def has_images(self) -> bool:
        return self.model.cfg.has_images

    def preprocess(self, image: Image.Image | str | Path) -> np.ndarray:
        """A PIL image or a file -> uint8 (S, S, 3) as encode_images expects."""
        if isinstance(image, Image.Image):
            return fit_square(image, self.image_size)
        return load_square(image, self.image_size)

    @torch.inference_mode()
    def encode_images(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """uint8 (B, S, S, 3) -> (B, dim)."""
        batch = torch.as_tensor(images)
        if batch.dtype != torch.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"encode_images takes uint8 (B, S, S, 3); got {tuple(batch.shape)} {batch.dtype}")
        if batch.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(f"images must be {self.image_size}x{self.image_size} (use Encoder.preprocess); "
                             f"got {batch.shape[1]}x{batch.shape[2]}")
        out = []
        for chunk in batch.split(self.batch_size):
            x = chunk.permute(0, 3, 1, 2).contiguous().to(self.device)  # (b, 3, S, S)
            out.append(self.model.encode_image(x).float().cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, self.dim), np.float32)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Captions or queries -> (B, dim)."""
        out = [self._text_batch(self.tokenizer.batch(list(texts[i : i + self.batch_size])))  # (b, t <= T)
               for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def _text_batch(self, ids: np.ndarray) -> np.ndarray:  # (b, t) -> (b, dim)
        if self._text_numpy is not None:
            return self._text_numpy(ids)
        with torch.inference_mode():
            return self._encode_text(torch.from_numpy(ids).to(self.device)).float().cpu().numpy()
