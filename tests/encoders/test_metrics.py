"""Recall@K by the standard protocol, on cases small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from photoseek.encoders.metrics import i2t_ranks, retrieval_metrics, t2i_ranks, t2t_ranks

# Three images on the axes; four captions: 0 and 1 belong to image 0, 2 to image 1, 3 to image 2.
IMG = np.eye(3, dtype=np.float32)
TXT = np.array([[0.9, 0.1, 0], [0.2, 0.0, 0.8], [0.1, 0.7, 0.2], [0.0, 0.6, 0.4]], dtype=np.float32)
OWNER = np.array([0, 0, 1, 2])


def test_t2i_ranks_by_hand() -> None:
    # caption 0 -> image 0 best (rank 0); caption 1 scores image 2 higher (rank 1);
    # caption 2 -> image 1 best; caption 3 scores image 1 (0.6) above image 2 (0.4): rank 1.
    assert t2i_ranks(IMG, TXT, OWNER).tolist() == [0, 1, 0, 1]


def test_i2t_uses_best_ranked_own_caption() -> None:
    # image 0: caption 0 (0.9) is the top caption -> 0; image 1: captions 2 (0.7) top -> 0 for image 1;
    # image 2: own caption 3 scores 0.4, beaten by caption 1 (0.8) -> rank 1.
    assert i2t_ranks(IMG, TXT, OWNER).tolist() == [0, 0, 1]


def test_summary_percentages_and_rsum() -> None:
    m = retrieval_metrics(IMG, TXT, OWNER)
    assert m["t2i"]["r1"] == pytest.approx(50.0) and m["t2i"]["r5"] == 100.0
    assert m["i2t"]["r1"] == pytest.approx(200 / 3) and m["i2t"]["medr"] == 1.0
    assert m["rsum"] == pytest.approx(50 + 100 + 100 + 200 / 3 + 100 + 100)


def test_t2t_excludes_itself_and_counts_only_other_images() -> None:
    txt = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype=np.float32)
    owner = np.array([0, 0, 1, 1])
    assert t2t_ranks(txt, owner).tolist() == [0, 0, 0, 0]
    # Now each caption's nearest neighbour belongs to another image. Caption 0's sibling (caption 2) scores 0,
    # beaten by captions 1 (0.9) and 3 (0.1): rank 2. Caption 1's sibling (3) scores 0.18, beaten by caption 0 only.
    owner = np.array([0, 1, 0, 1])
    assert t2t_ranks(txt, owner).tolist() == [2, 1, 2, 1]
    assert retrieval_metrics(None, txt, owner)["t2t"]["r1"] == 0.0
