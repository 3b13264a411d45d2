"""Retrieval metrics by the standard image-caption protocol. Ranks are 0-based counts of strictly better items."""

from __future__ import annotations

import numpy as np

KS = (1, 5, 10)
_CHUNK = 1024


def _summary(ranks: np.ndarray) -> dict[str, float]:
    """0-based ranks -> R@1/5/10 in percent and the median rank (1-based)."""
    out = {f"r{k}": float(100.0 * np.mean(ranks < k)) for k in KS}
    out["medr"] = float(np.median(ranks) + 1)
    return out


def t2i_ranks(img: np.ndarray, txt: np.ndarray, txt_img: np.ndarray) -> np.ndarray:
    """For each caption, how many images score strictly higher than its own image. img (N, D), txt (M, D)."""
    ranks = np.empty(len(txt), dtype=np.int64)
    for s in range(0, len(txt), _CHUNK):
        sims = txt[s : s + _CHUNK] @ img.T  # (m, N)
        own = sims[np.arange(len(sims)), txt_img[s : s + _CHUNK]][:, None]
        ranks[s : s + _CHUNK] = (sims > own).sum(1)
    return ranks


def i2t_ranks(img: np.ndarray, txt: np.ndarray, txt_img: np.ndarray) -> np.ndarray:
    """For each image, how many captions score strictly higher than the best of its own captions."""
    ranks = np.empty(len(img), dtype=np.int64)
    for s in range(0, len(img), _CHUNK):
        sims = img[s : s + _CHUNK] @ txt.T  # (n, M)
        own = txt_img[None, :] == np.arange(s, s + len(sims))[:, None]  # (n, M)
        best_own = np.where(own, sims, -np.inf).max(1, keepdims=True)
        ranks[s : s + _CHUNK] = (sims > best_own).sum(1)
    return ranks


def t2t_ranks(txt: np.ndarray, txt_img: np.ndarray) -> np.ndarray:
    """Caption-to-caption: for each caption, how many captions of other images beat its best sibling."""
    ranks = np.empty(len(txt), dtype=np.int64)
    for s in range(0, len(txt), _CHUNK):
        sims = txt[s : s + _CHUNK] @ txt.T  # (m, M)
        idx = np.arange(s, s + len(sims))
        sims[np.arange(len(sims)), idx] = -np.inf  # never match oneself
        same = txt_img[None, :] == txt_img[idx][:, None]
        best = np.where(same, sims, -np.inf).max(1, keepdims=True)
        ranks[s : s + _CHUNK] = ((sims > best) & ~same).sum(1)
    return ranks


def retrieval_metrics(img: np.ndarray | None, txt: np.ndarray, txt_img: np.ndarray) -> dict:
    """{"i2t": {...}, "t2i": {...}, "rsum"} for joint models; {"t2t": {...}, "rsum"} for caption-only ones."""
    txt_img = np.asarray(txt_img)
    if img is None:
        t2t = _summary(t2t_ranks(txt, txt_img))
        return {"t2t": t2t, "rsum": sum(t2t[f"r{k}"] for k in KS)}
    i2t = _summary(i2t_ranks(img, txt, txt_img))
    t2i = _summary(t2i_ranks(img, txt, txt_img))
    return {"i2t": i2t, "t2i": t2i, "rsum": sum(i2t[f"r{k}"] + t2i[f"r{k}"] for k in KS)}
