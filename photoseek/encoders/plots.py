"""Pictures: the training curve and the embedding-space map. matplotlib is imported only when drawing."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_training_curve(history: list[dict], out: Path) -> Path:
    """Loss and validation recall per epoch, side by side."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, [h["loss"] for h in history], marker="o", ms=3)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key, style in (("t2i", "-"), ("i2t", "--"), ("t2t", "-")):
        pts = [(h["epoch"], h["val"][key]) for h in history if key in h.get("val", {})]
        for k in ("r1", "r10"):
            if pts:
                ax_val.plot([e for e, _ in pts], [v[k] for _, v in pts], style, marker="o", ms=3,
                            label=f"{key} R@{k[1:]}")
    ax_val.set(xlabel="epoch", ylabel="recall (%)", title="validation recall", ylim=(0, 100))
    if ax_val.lines:
        ax_val.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def project_2d(x: np.ndarray) -> np.ndarray:
    """PCA to two dimensions (N, D) -> (N, 2), by SVD of the centred data."""
    centred = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def plot_embedding_map(images: np.ndarray | None, texts: np.ndarray, out: Path, title: str = "") -> Path:
    """Images and captions of one split projected together to 2-D, coloured by modality."""
    plt = _pyplot()
    both = texts if images is None else np.concatenate([images, texts])
    xy = project_2d(both)
    n_img = 0 if images is None else len(images)
    fig, ax = plt.subplots(figsize=(6.4, 6))
    ax.scatter(xy[n_img:, 0], xy[n_img:, 1], s=4, alpha=0.35, c="tab:orange", label=f"captions ({len(texts)})")
    if n_img:
        ax.scatter(xy[:n_img, 0], xy[:n_img, 1], s=6, alpha=0.6, c="tab:blue", label=f"images ({n_img})")
    ax.set(title=title or "embedding space (PCA)", xlabel="PC 1", ylabel="PC 2")
    ax.legend(loc="upper right", markerscale=3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
