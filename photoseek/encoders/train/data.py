"""Training data: splits decoded once into memory-mapped uint8 arrays, then served as shuffled batches."""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from photoseek.encoders.data.images import decode_many
from photoseek.encoders.data.records import CaptionSet, DatasetError


@dataclass(frozen=True)
class PreparedSplit:
    """A split on disk: `<key>.npy` holds uint8 (N, S, S, 3); `<key>.json` holds ids and captions."""

    name: str
    images_file: Path
    meta_file: Path

    def load(self) -> tuple[np.ndarray, list[tuple[str, ...]], list[str]]:
        meta = json.loads(self.meta_file.read_text())
        images = np.load(self.images_file, mmap_mode="r")  # shared between workers through the page cache
        return images, [tuple(c) for c in meta["captions"]], meta["image_ids"]


def _cache_key(items: list, size: int) -> str:
    h = hashlib.sha1(str(size).encode())
    for it in items:
        st = it.path.stat()
        h.update(f"{it.path}\0{st.st_size}\0{st.st_mtime_ns}\0{len(it.captions)}\n".encode())
    return h.hexdigest()[:16]


def prepare_split(captions: CaptionSet, split: str, size: int, cache_dir: Path, limit: int | None = None,
                  threads: int = 4, decode: bool = True) -> PreparedSplit | None:
    """Decode a split once (reused while its files are unchanged); unreadable images are skipped and listed.

    decode=False (caption-only models) stores a 1x1 placeholder per image instead of pixels.
    """
    items = captions.split(split)[:limit] if limit else captions.split(split)
    if not items:
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = f"{split}-{size if decode else 0}-{_cache_key(items, size if decode else 0)}"
    prepared = PreparedSplit(split, cache_dir / f"{key}.npy", cache_dir / f"{key}.json")
    if prepared.images_file.is_file() and prepared.meta_file.is_file():
        return prepared
    if decode:
        images, failures = decode_many([it.path for it in items], size, threads, label=f"decoding {split} images")
    else:
        images, failures = np.zeros((len(items), 1, 1, 3), np.uint8), []
    failed = {p for p, _ in failures}
    kept = [it for it in items if it.path not in failed]
    for path, reason in failures:
        print(f"skipped unreadable image {path}: {reason}")
    if not kept:
        raise DatasetError(f"no image of the {split} split could be decoded (first failure: {failures[0][1]})")
    tmp = prepared.images_file.with_suffix(".tmp.npy")
    np.save(tmp, images)
    os.replace(tmp, prepared.images_file)
    meta = {"split": split, "image_ids": [it.image_id for it in kept], "captions": [list(it.captions) for it in kept],
            "skipped": [[str(p), r] for p, r in failures]}
    prepared.meta_file.write_text(json.dumps(meta))
    return prepared


def epoch_batches(n_items: int, global_batch: int, epoch: int, seed: int, rank: int = 0, world: int = 1
                  ) -> Iterator[np.ndarray]:
    """Indices of this rank's share of each global batch; every rank draws the same permutation."""
    order = np.random.default_rng([seed, epoch]).permutation(n_items)
    per_rank = global_batch // world
    for start in range(0, n_items - global_batch + 1, global_batch):  # drop the ragged tail: equal steps per rank
        chunk = order[start : start + global_batch]
        yield np.sort(chunk[rank * per_rank : (rank + 1) * per_rank])  # sorted reads are kinder to a memory map


def steps_per_epoch(n_items: int, global_batch: int) -> int:
    return n_items // global_batch


def load_batch(images: np.ndarray, captions: list[tuple[str, ...]], idx: np.ndarray, rng: random.Random,
               per_image: int = 1, pair: bool = False) -> tuple[torch.Tensor, list[str], list[str] | None]:
    """-> uint8 (b, 3, S, S) and per_image captions per image (grouped by image, distinct where there are
    enough); for caption-only models also a second caption of each image, distinct from the first."""
    batch = torch.from_numpy(np.ascontiguousarray(images[idx])).permute(0, 3, 1, 2)  # (b, S, S, 3) -> (b, 3, S, S)
    first, second = [], []
    for i in idx:
        caps = captions[i]
        picks = rng.sample(range(len(caps)), per_image) if len(caps) >= per_image else \
            [rng.randrange(len(caps)) for _ in range(per_image)]
        first.extend(caps[p] for p in picks)
        if pair:
            a = picks[0]
            b = rng.randrange(len(caps) - 1) if len(caps) > 1 else 0
            second.append(caps[b + (b >= a)] if len(caps) > 1 else caps[a])
    return batch, first, second if pair else None
