"""Word-level tokenizer with a vocabulary built from the training captions."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SWAP = {"left": "right", "right": "left"}


def split_words(text: str) -> list[str]:
    """Lower-cased words; punctuation is dropped (it carries little meaning in captions)."""
    return _WORD.findall(text.lower())


def swap_left_right(text: str) -> str:
    """The caption of the mirrored image: "left" and "right" trade places, case kept."""

    def repl(m: re.Match[str]) -> str:
        word = m.group(0)
        new = _SWAP[word.lower()]
        return new.capitalize() if word[0].isupper() else new

    return re.sub(r"\b(?:[Ll]eft|[Rr]ight)\b", repl, text)


class Vocabulary:
    """Maps words to ids: 0 is padding, 1 is unknown, then words by falling frequency."""

    def __init__(self, words: list[str]):
        if words[:2] != [PAD, UNK]:
            raise ValueError("a vocabulary starts with <pad>, <unk>")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, captions: Iterable[str], min_freq: int = 1, max_size: int | None = None) -> "Vocabulary":
        counts = Counter(w for c in captions for w in split_words(c))
        kept = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls([PAD, UNK, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"words": self.words}, indent=0))

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        return cls(json.loads(path.read_text())["words"])


class Tokenizer:
    """Captions to fixed-length id tensors: (B, context_length), padded with 0."""

    def __init__(self, vocab: Vocabulary, context_length: int):
        self.vocab = vocab
        self.context_length = context_length

    def encode(self, text: str) -> list[int]:
        unk = self.vocab.index[UNK]
        ids = [self.vocab.index.get(w, unk) for w in split_words(text)][: self.context_length]
        return ids or [unk]  # an empty caption still yields one token so pooling is defined

    def __call__(self, texts: list[str]) -> torch.Tensor:
        ids = self.batch(texts)  # (B, t <= T)
        out = torch.zeros(len(ids), self.context_length, dtype=torch.long)  # (B, T)
        out[:, : ids.shape[1]] = torch.from_numpy(ids)
        return out

    def batch(self, texts: list[str]) -> np.ndarray:
        """Queries to ids (B, t) int64, padded with 0 only up to the longest text (1 <= t <= context_length).

        Every text tower masks padding (mean over real tokens; the BiLSTM packs), so columns of padding
        change nothing: a 4-word query costs 4 positions, not context_length (what the encoder runs)."""
        rows = [self.encode(text) for text in texts]
        out = np.zeros((len(rows), max((len(r) for r in rows), default=1)), dtype=np.int64)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = ids
        return out

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        return " ".join(self.vocab.words[i] for i in list(ids) if int(i) != 0)
