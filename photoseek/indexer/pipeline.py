"""`photoseek index`: plan the run (find, skip what is unchanged), then run the stages locally or on Ray."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from photoseek.indexer.decode import DecodeLimits
from photoseek.indexer.report import IndexReport
from photoseek.indexer.sink import PAYLOAD_INDEXES, Catalog, QdrantWriter, display_path, prune
from photoseek.indexer.sources import FoundFile, Skipped, find
from photoseek.indexer.store import VectorStore, open_store

DEFAULT_ALIAS = "photos"


@dataclass
class IndexRequest:
    """The `photoseek index` entry point's settings (YAML section `index`, flags override)."""

    path: str
    model: str
    store: str | None = None  # embedded store folder (default ./photoseek-data)
    qdrant_url: str | None = None
    collection: str = DEFAULT_ALIAS  # an alias; the collection behind it is named after the model
    runner: str = "local"  # "local" or "ray"
    json_report: str | None = None
    prune: bool = False
    batch_size: int = 64
    decode_threads: int | None = None  # local runner; default: the machine's cores
    actors: int = 1  # ray runner: embed actors
    gpu: bool = False  # ray runner: one GPU per embed actor
    ray_address: str | None = None
    max_pixels: int = DecodeLimits.max_pixels
    max_bytes: int = DecodeLimits.max_bytes
    max_decode_seconds: float = DecodeLimits.max_seconds
    progress: bool = True

    @property
    def limits(self) -> DecodeLimits:
        return DecodeLimits(self.max_pixels, self.max_bytes, self.max_decode_seconds)


def collection_name(alias: str, model_id: str) -> str:
    """One collection per model, so a new model indexes beside the old one until the alias moves."""
    return f"{alias}-{model_id}"[:64]


@dataclass
class Plan:
    todo: list[FoundFile]
    catalog: Catalog


def plan_run(req: IndexRequest, store: VectorStore, collection: str, report: IndexReport) -> Plan:
    """Find the files; report the skipped-with-a-reason ones; leave out those indexed and unchanged."""
    catalog = Catalog.load(store, collection)
    todo: list[FoundFile] = []
    for item in find(req.path):
        if isinstance(item, Skipped):
            report.fail(item.path, item.reason, item.detail)
        elif catalog.unchanged(item):
            report.skipped += 1
        else:
            todo.append(item)
    return Plan(todo, catalog)


def _build_index(store: VectorStore, show: bool) -> None:
    """Flush and build the vector index (Edge builds HNSW here, blocking: about 1 min per 100k points on 2
    cores, 16 min at 1M), saying so first, since nothing else moves on the screen meanwhile."""
    import sys

    t0 = time.monotonic()
    if show:
        print("indexing: writing and building the vector index ...", file=sys.stderr, flush=True)
    store.flush()
    if show and time.monotonic() - t0 > 1:
        print(f"indexing: vector index built in {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)


def index(req: IndexRequest, store: VectorStore | None = None, embedder_cls: type | None = None) -> IndexReport:
    """Run one indexing pass and return its report (also written to req.json_report when set)."""
    from photoseek.encoders.checkpoint import read_meta

    t0 = time.monotonic()
    meta = read_meta(Path(req.model))
    if not meta.get("has_images", True):
        raise ValueError(f"model {meta['model_id']} is caption-only (no image tower); it cannot index photos")
    own_store = store is None
    store = store or open_store(req.store, req.qdrant_url)
    collection = collection_name(req.collection, meta["model_id"])
    report = IndexReport(collection=collection, model_id=meta["model_id"], runner=req.runner)
    try:
        store.ensure_collection(collection, meta["embed_dim"], meta["model_id"], PAYLOAD_INDEXES)
        plan = plan_run(req, store, collection, report)
        writer = QdrantWriter(store, collection, meta["model_id"], plan.catalog)
        if req.runner == "local":
            from photoseek.indexer.local_runner import run_local

            run_local(req, plan.todo, meta["image_size"], writer, report)
        elif req.runner == "ray":
            from photoseek.indexer.ray_runner import run_ray

            run_ray(req, plan.todo, meta["image_size"], writer, report, **({"embedder_cls": embedder_cls}
                                                                           if embedder_cls else {}))
        else:
            raise ValueError(f"unknown runner {req.runner!r}; choose local or ray")
        report.indexed, report.duplicates = writer.counts.indexed, writer.counts.duplicates
        if req.prune:
            # a folder run prunes below that folder; a manifest describes the whole collection
            within = display_path(os.path.abspath(req.path)) if os.path.isdir(req.path) else None
            report.pruned = prune(store, collection, plan.catalog, plan.catalog.gone(within))
        _build_index(store, req.progress)
        store.set_alias(req.collection, collection)
    finally:
        if own_store:
            store.close()
    report.seconds = round(time.monotonic() - t0, 2)
    if req.json_report:
        report.write(req.json_report)
    return report

