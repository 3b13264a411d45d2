"""Text towers: token ids (B, T) -> caption features (B, width). Padding id is 0."""

from __future__ import annotations

import torch
from torch import nn

from photoseek.encoders.config import TextConfig


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens. x: (B, T, C), mask: (B, T) true where a token is real -> (B, C)."""
    m = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


class BagOfWords(nn.Module):
    """The seed's first trial: a caption is the mean of its word embeddings."""

    def __init__(self, cfg: TextConfig, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.width, padding_idx=0)
        self.out_dim = cfg.width

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return masked_mean(self.embed(ids), ids != 0)  # (B, C)


class BiLSTMText(nn.Module):
    """Bidirectional LSTM over word embeddings, mean-pooled over real tokens."""

    def __init__(self, cfg: TextConfig, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.width, padding_idx=0)
        self.lstm = nn.LSTM(cfg.width, cfg.width // 2, num_layers=cfg.layers, batch_first=True,
                            bidirectional=True, dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.out_dim = cfg.width

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        lengths = (ids != 0).sum(1).clamp_min(1).cpu()  # (B,)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])  # (B, T, C)
        return masked_mean(out, ids != 0)


class TransformerText(nn.Module):
    """A small pre-norm transformer encoder with learned positions, mean-pooled over real tokens."""

    def __init__(self, cfg: TextConfig, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.width, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(cfg.context_length, cfg.width))
        nn.init.normal_(self.pos, std=0.01)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, dim_feedforward=4 * cfg.width, dropout=cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        self.out_dim = cfg.width

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = ids != 0  # (B, T)
        x = self.embed(ids) + self.pos[: ids.shape[1]]  # (B, T, C)
        x = self.encoder(x, src_key_padding_mask=~mask)  # (B, T, C)
        return masked_mean(self.norm(x), mask)  # (B, C)


TEXT_TOWERS = {"bow": BagOfWords, "bilstm": BiLSTMText, "transformer": TransformerText}


def build_text_tower(cfg: TextConfig, vocab_size: int) -> nn.Module:
    if cfg.kind not in TEXT_TOWERS:
        raise ValueError(f"unknown text tower {cfg.kind!r}; choose from {', '.join(TEXT_TOWERS)}")
    return TEXT_TOWERS[cfg.kind](cfg, vocab_size)
