"""Decode many image files into one uint8 array, reporting the ones that fail instead of stopping."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from photoseek.encoders.preprocess import load_square
from photoseek.progress import Progress


def decode_many(paths: Sequence[Path], size: int, threads: int = 4, label: str = "decoding images",
                show_progress: bool = True) -> tuple[np.ndarray, list[tuple[Path, str]]]:
    """-> (uint8 (N_ok, size, size, 3) in input order without the failures, [(path, reason), ...])."""
    out = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)
    failures: list[tuple[Path, str]] = []
    progress = Progress(label, total=len(paths), unit="images", enabled=show_progress)

    def work(i: int) -> None:
        try:
            out[i] = load_square(paths[i], size)
            ok[i] = True
        except Exception as exc:  # any decoder error is a reason to skip this one file, not the run
            failures.append((Path(paths[i]), f"{type(exc).__name__}: {exc}"))

    # Pillow releases the GIL while decoding, so threads overlap well on small machines.
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for _ in pool.map(work, range(len(paths))):
            progress.update()
    progress.close()
    return (out if ok.all() else out[ok]), sorted(failures)
