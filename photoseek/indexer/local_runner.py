"""The local runner: decode on a thread pool, embed and write in this thread, a bounded queue between them.

Pillow and torch both release the GIL, so threads overlap decode with embedding on one machine without the
start-up and serialisation costs of Ray (which pays off across machines, not on one small one).
"""

from __future__ import annotations

import os
from collections import deque
from itertools import islice
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from photoseek.indexer.decode import Decoder
from photoseek.indexer.embed import Embedder
from photoseek.indexer.records import DETAIL, OK, PATH, REASON
from photoseek.indexer.report import IndexReport
from photoseek.indexer.sink import QdrantWriter
from photoseek.indexer.sources import FoundFile, batches
from photoseek.progress import Progress

DECODE_CHUNK = 8  # files per decode task: small enough to spread over threads, big enough to amortise overhead
PREFETCH_BYTES = 128 * 1024 * 1024  # decoded squares allowed to wait for the model


def concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Join dict batches column by column."""
    out: dict[str, Any] = {}
    for key in parts[0]:
        values = [p[key] for p in parts]
        out[key] = np.concatenate(values) if isinstance(values[0], np.ndarray) else [v for vs in values for v in vs]
    return out


def record_failures(batch: dict[str, Any], report: IndexReport) -> None:
    for i in np.flatnonzero(~np.asarray(batch[OK], dtype=bool)):
        report.fail(str(batch[PATH][i]), batch[REASON][i], batch[DETAIL][i])


def run_local(req, todo: list[FoundFile], image_size: int, writer: QdrantWriter, report: IndexReport,
              embedder: Embedder | None = None) -> None:
    """Decode -> embed -> write every file of `todo`, showing progress.

    Decoding starts before the model loads (loading torch and the weights takes seconds), and up to
    PREFETCH_BYTES of decoded squares wait in the queue, so neither side idles while the other catches up.
    """
    threads = req.decode_threads or os.cpu_count() or 2
    decoder = Decoder(image_size, req.limits)
    window = max(4 * threads, PREFETCH_BYTES // (DECODE_CHUNK * image_size * image_size * 3))  # chunks in flight
    progress = Progress("indexing", total=len(todo), unit="images", enabled=req.progress)
    in_flight: deque[Future] = deque()
    pending: list[dict[str, Any]] = []
    chunks = batches(todo, DECODE_CHUNK)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for chunk in islice(chunks, window):
            in_flight.append(pool.submit(decoder, chunk))
        # Embedding shares the cores with the decode threads: on a CPU, give torch half of them (1 of 2 ran
        # 347 images/s here where torch's default 2 threads ran 289).
        embedder = embedder or Embedder(req.model, threads=None if req.gpu else "auto")
        for chunk in chunks:
            _collect(in_flight.popleft().result(), pending, req.batch_size, embedder, writer, report, progress)
            in_flight.append(pool.submit(decoder, chunk))
        while in_flight:
            _collect(in_flight.popleft().result(), pending, req.batch_size, embedder, writer, report, progress)
    if pending:
        _embed_write(concat(pending), embedder, writer, report, progress)
    progress.close()


def _collect(decoded, pending, batch_size, embedder, writer, report, progress) -> None:
    pending.append(decoded)
    if sum(len(p[PATH]) for p in pending) >= batch_size:
        _embed_write(concat(pending), embedder, writer, report, progress)
        pending.clear()


def _embed_write(batch: dict[str, Any], embedder: Embedder, writer: QdrantWriter, report: IndexReport,
                 progress: Progress) -> None:
    embedded = embedder(batch)
    record_failures(embedded, report)
    writer(embedded)
    progress.update(len(batch[PATH]))
