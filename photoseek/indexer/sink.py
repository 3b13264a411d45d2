"""The write stage: decoded, embedded rows -> Qdrant points, one per distinct photo content.

A point's id derives from the content hash, so the same photo under two paths is one point listing both
paths, and a re-run overwrites instead of duplicating. The catalog (path -> size, mtime, point) is read back
from the collection itself, so resuming needs no state beside the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from photoseek.indexer.decode import BYTES, CAMERA, FORMAT, HEIGHT, TAKEN_AT, TAKEN_TS, WIDTH
from photoseek.indexer.records import META, OK, PATH, REL, SHA256, VECTOR, point_id
from photoseek.indexer.sources import MTIME_NS, SIZE, FoundFile
from photoseek.indexer.store import VectorStore

# Payload fields with an index, because search filters use them.
PAYLOAD_INDEXES = {"paths": "keyword", "dirs": "keyword", "format": "keyword", "camera": "keyword",
                   "taken_ts": "integer", "mtime": "integer", "sha256": "keyword"}


def display_path(path: str) -> str:
    """A path as valid UTF-8 text for the payload; undecodable bytes become \\x escapes (and are noted)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def ancestors(path: str) -> list[str]:
    """'/a/b/c.jpg' -> ['/a', '/a/b']: what a path-prefix filter matches on."""
    parts = path.split("/")
    return ["/".join(parts[:i]) or "/" for i in range(2, len(parts))]


@dataclass
class Catalog:
    """What the collection already holds, by file path: (size, mtime_ns, point id)."""

    files: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, store: VectorStore, collection: str) -> "Catalog":
        files: dict[str, tuple[int, int, str]] = {}
        for rec in store.scroll(collection, fields=["files"]):
            for f in rec.payload.get("files", []):
                files[f["path"]] = (int(f["size"]), int(f["mtime_ns"]), rec.id)
        return cls(files)

    def unchanged(self, found: FoundFile) -> bool:
        """True when the file is indexed with the same size and modification time (then it is not read)."""
        self.seen.add(display_path(found.path))
        known = self.files.get(display_path(found.path))
        return known is not None and known[:2] == (found.size, found.mtime_ns)

    def gone(self, within: str | None = None) -> list[str]:
        """Indexed paths this run did not find (what --prune removes); only those below `within` when given,
        so that pruning after indexing one folder never touches photos indexed from another."""
        missing = set(self.files) - self.seen
        if within is not None:
            prefix = within.rstrip("/") + "/"
            missing = {p for p in missing if p.startswith(prefix)}
        return sorted(missing)


@dataclass
class WriteCounts:
    indexed: int = 0
    duplicates: int = 0


class QdrantWriter:
    """Upserts a batch's good rows, merging the file lists of photos already stored under the same content."""

    def __init__(self, store: VectorStore, collection: str, model_id: str, catalog: Catalog | None = None,
                 flush_every: int = 20_000):
        self.store, self.collection, self.model_id = store, collection, model_id
        self.catalog = catalog or Catalog()
        self.counts = WriteCounts()
        # An embedded store's write-ahead log grows to the data's size until flushed; keep it short on long runs.
        self.flush_every, self._unflushed = flush_every, 0

    def __call__(self, batch: dict[str, Any]) -> WriteCounts:
        ok = np.flatnonzero(np.asarray(batch[OK], dtype=bool))
        if not len(ok):
            return WriteCounts()
        rows: dict[str, dict[str, Any]] = {}
        vectors: dict[str, np.ndarray] = {}
        counts = WriteCounts()
        for i in ok:
            pid = point_id(batch[SHA256][i])
            file = {"path": display_path(str(batch[PATH][i])), "rel": display_path(str(batch[REL][i])),
                    "size": int(batch[SIZE][i]), "mtime_ns": int(batch[MTIME_NS][i])}
            if pid in rows:
                rows[pid]["files"].append(file)
                counts.duplicates += 1
                continue
            rows[pid] = self._payload(batch, i, file)
            vectors[pid] = np.asarray(batch[VECTOR][i], dtype=np.float32)
        existing = {r.id: r.payload for r in self.store.retrieve(self.collection, list(rows))}
        for pid, payload in rows.items():
            counts.duplicates += self._merge(payload, existing.get(pid))
        self._detach_moved(rows)
        ids = list(rows)
        self.store.upsert(self.collection, ids, np.stack([vectors[i] for i in ids]), [rows[i] for i in ids])
        counts.indexed = len(ok) - counts.duplicates
        self.counts.indexed += counts.indexed
        self.counts.duplicates += counts.duplicates
        self._unflushed += len(ids)
        if self._unflushed >= self.flush_every:
            self.store.flush(index=False)  # durable now; the index is built once, at the end of the run
            self._unflushed = 0
        return counts

    def _payload(self, batch: dict[str, Any], i: int, file: dict[str, Any]) -> dict[str, Any]:
        meta = batch[META][i] if META in batch else {}
        meta = json.loads(meta) if isinstance(meta, str) else dict(meta or {})
        payload = {"files": [file], "sha256": batch[SHA256][i], "width": int(batch[WIDTH][i]),
                   "height": int(batch[HEIGHT][i]), "format": batch[FORMAT][i], "bytes": int(batch[BYTES][i]),
                   "model_id": self.model_id, "meta": meta}
        if batch[TAKEN_AT][i]:
            payload["taken_at"], payload["taken_ts"] = batch[TAKEN_AT][i], int(batch[TAKEN_TS][i])
        if batch[CAMERA][i]:
            payload["camera"] = batch[CAMERA][i]
        return payload

    def _merge(self, payload: dict[str, Any], old: dict[str, Any] | None) -> int:
        """Fold the stored point's other files in; returns how many of this batch's files were duplicates."""
        mine = {f["path"] for f in payload["files"]}
        others = [f for f in (old or {}).get("files", []) if f["path"] not in mine]
        duplicates = len(payload["files"]) if others else 0
        payload["files"] = sorted(others + payload["files"], key=lambda f: f["path"])
        payload["meta"] = {**(old or {}).get("meta", {}), **payload["meta"]}
        _derive(payload)
        return duplicates

    def _detach_moved(self, rows: dict[str, dict[str, Any]]) -> None:
        """A file whose content changed leaves its old point (which is deleted when no file is left)."""
        stale: dict[str, list[str]] = {}
        for pid, payload in rows.items():
            for f in payload["files"]:
                known = self.catalog.files.get(f["path"])
                if known and known[2] != pid:
                    stale.setdefault(known[2], []).append(f["path"])
                self.catalog.files[f["path"]] = (f["size"], f["mtime_ns"], pid)
        for pid, paths in stale.items():
            remove_paths(self.store, self.collection, pid, set(paths))


def _derive(payload: dict[str, Any]) -> None:
    """The indexed fields that follow from the file list."""
    payload["paths"] = [f["path"] for f in payload["files"]]
    payload["dirs"] = sorted({d for p in payload["paths"] for d in ancestors(p)})
    payload["mtime"] = max(f["mtime_ns"] for f in payload["files"]) // 1_000_000_000


def remove_paths(store: VectorStore, collection: str, pid: str, paths: set[str]) -> bool:
    """Drop files from a point; delete the point when none is left. Returns True if it was deleted."""
    found = store.retrieve(collection, [pid], with_vectors=True)
    if not found:
        return False
    rec = found[0]
    files = [f for f in rec.payload.get("files", []) if f["path"] not in paths]
    if not files:
        store.delete(collection, [pid])
        return True
    payload = {**rec.payload, "files": files}
    _derive(payload)
    store.upsert(collection, [pid], np.asarray(rec.vector, dtype=np.float32)[None], [payload])
    return False


def prune(store: VectorStore, collection: str, catalog: Catalog, paths: Iterable[str]) -> int:
    """Remove the given (vanished) paths; returns the number of points deleted."""
    by_point: dict[str, set[str]] = {}
    for p in paths:
        by_point.setdefault(catalog.files[p][2], set()).add(p)
    deleted = sum(remove_paths(store, collection, pid, ps) for pid, ps in by_point.items())
    for p in paths:
        catalog.files.pop(p, None)
    return deleted

