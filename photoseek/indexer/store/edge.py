"""Embedded backend: one Qdrant Edge shard per collection, in-process, no server.

Layout of a store folder:
    .lock                        flock held by the one process that has the store open; holds its pid
    aliases.json                 {"alias": "collection"}, replaced atomically
    collections/<name>/photoseek.json   {"dim", "model_id", "created"}, written before the shard exists
    collections/<name>/shard/    the EdgeShard (wal/, segments/, edge_config.json)
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from photoseek.indexer.store.base import (
    DEFAULT_EXACT_BELOW,
    CollectionInfo,
    Filter,
    Hit,
    Match,
    MatchAny,
    Range,
    Record,
    StoreError,
    VectorStore,
    active,
    check_spec,
    check_name,
)

_SCHEMA = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
    "bool": qe.PayloadSchemaType.Bool,
}
META_FILE = "photoseek.json"


def edge_filter(filter: Filter | None) -> qe.Filter | None:
    """Our typed filter as an Edge filter (ranges are RangeFloat for integer and float fields alike)."""
    if filter is None:
        return None
    conditions: list[Any] = []
    for c in filter.must:
        if isinstance(c, Match):
            # qdrant-edge-py 0.9.0 reads a Python bool as the integer 1/0, which never matches a bool
            # payload; numpy's bool_ is not an int subclass and arrives as a real bool.
            value = np.bool_(c.value) if isinstance(c.value, bool) else c.value
            conditions.append(qe.FieldCondition(c.key, match=qe.MatchValue(value)))
        elif isinstance(c, MatchAny):
            conditions.append(qe.FieldCondition(c.key, match=qe.MatchAny(list(c.values))))
        elif isinstance(c, Range):
            conditions.append(qe.FieldCondition(c.key, range=qe.RangeFloat(gte=c.gte, gt=c.gt, lte=c.lte, lt=c.lt)))
        else:
            raise StoreError(f"unsupported filter condition {c!r}")
    return qe.Filter(must=conditions)


def write_json_atomic(path: Path, obj: object) -> None:
    """Write-then-rename, so a crash leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def take_lock(path: Path) -> int:
    """Hold an exclusive, non-blocking flock on `path` and record our pid in it; return the fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StoreError(
            f"store {path.parent} is open in another process (pid {pid}); stop it or write through the service"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class EdgeStore(VectorStore):
    """A store folder opened by this process alone (see the module docstring for its layout)."""

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        exact_below: int = DEFAULT_EXACT_BELOW,
        optimize_every: int = 1_000,
        full_scan_threshold_kb: int = 10_000,
        indexing_threshold_kb: int | None = None,
        batch_size: int = 512,
    ) -> None:
        """`indexing_threshold_kb` None keeps Qdrant's default (segments below it stay unindexed, searched by scan)."""
        super().__init__(exact_below=exact_below, batch_size=batch_size)
        self.root = Path(store_dir)
        (self.root / "collections").mkdir(parents=True, exist_ok=True)
        self._lock_fd: int | None = take_lock(self.root / ".lock")
        self.optimize_every = optimize_every
        self._full_scan_kb = full_scan_threshold_kb
        self._indexing_kb = indexing_threshold_kb
        self._mutex = threading.RLock()  # guards lazy shard opening and metadata changes
        self._shards: dict[str, qe.EdgeShard] = {}
        self._pending: dict[str, int] = {}  # points written since the last optimize, per open shard
        self._optimized: set[str] = set()  # shards optimized since this process opened them
        self._aliases: dict[str, str] = self._read_json(self.root / "aliases.json", {})

    # --- files -------------------------------------------------------------------------------------
    @staticmethod
    def _read_json(path: Path, default: Any) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return default

    def _dir(self, name: str) -> Path:
        return self.root / "collections" / name

    def _meta(self, name: str) -> dict[str, Any]:
        return self._read_json(self._dir(name) / META_FILE, {})

    def _names(self) -> list[str]:
        base = self.root / "collections"
        return sorted(p.name for p in base.iterdir() if not p.name.startswith(".") and (p / META_FILE).exists())

    def _config(self, dim: int) -> qe.EdgeConfig:
        optimizers = None
        if self._indexing_kb is not None:
            optimizers = qe.EdgeOptimizersConfig(indexing_threshold=self._indexing_kb)
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=self._full_scan_kb),
            optimizers=optimizers,
        )

    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise StoreError(f"store {self.root} is closed")

    def _shard(self, name: str) -> tuple[str, qe.EdgeShard]:
        """The open shard of a collection or alias, opening it on first use."""
        self._check_open()
        shard = self._shards.get(self._aliases.get(name, name))
        if shard is not None:  # the hot path of a search: no file system check
            return self._aliases.get(name, name), shard
        name = self.resolve(name)
        with self._mutex:
            shard = self._shards.get(name)
            if shard is None:
                path = self._dir(name) / "shard"
                try:
                    if (path / "edge_config.json").exists():
                        shard = qe.EdgeShard.load(str(path))  # replays the WAL after a crash
                    else:  # metadata written, shard never created: finish the creation
                        shard = qe.EdgeShard.create(str(path), self._config(int(self._meta(name)["dim"])))
                except Exception as e:
                    raise StoreError(f"cannot open collection {name!r} at {path}: {e}") from e
                self._shards[name] = shard
                self._pending[name] = 0
            return name, shard

    # --- collections -------------------------------------------------------------------------------
    def ensure_collection(self, name: str, dim: int, model_id: str, payload_indexes: dict[str, str]) -> None:
        """Create (cosine, HNSW m=16 ef_construct=100) or check dim and model; add missing payload indexes."""
        check_spec(name, dim, payload_indexes)
        dim = int(dim)
        with self._mutex:
            target = self._aliases.get(name, name)
            if target in self._names():
                meta = self._meta(target)
                if int(meta["dim"]) != dim or meta["model_id"] != model_id:
                    raise StoreError(
                        f"collection {target!r} holds dim {meta['dim']} from model {meta['model_id']!r}, "
                        f"not dim {dim} from {model_id!r}: index into a new collection"
                    )
            else:
                self._check_open()
                self._dir(target).mkdir(parents=True, exist_ok=True)
                created = datetime.now(timezone.utc).isoformat(timespec="seconds")
                write_json_atomic(self._dir(target) / META_FILE, {"dim": dim, "model_id": model_id, "created": created})
            _, shard = self._shard(target)
            self._ensure_indexes(target, shard, payload_indexes)

    @staticmethod
    def _ensure_indexes(name: str, shard: qe.EdgeShard, payload_indexes: dict[str, str]) -> None:
        existing = shard.info().payload_schema
        for key, kind in payload_indexes.items():
            if key in existing:
                if existing[key].data_type != _SCHEMA[kind]:
                    raise StoreError(f"collection {name!r}: field {key!r} is indexed as {existing[key].data_type}")
                continue
            shard.update(qe.UpdateOperation.create_field_index(key, _SCHEMA[kind]))

    def collections(self) -> list[CollectionInfo]:
        """Every collection with its size; opens each shard."""
        out = []
        for name in self._names():
            meta = self._meta(name)
            points = self._shard(name)[1].info().points_count
            aliases = sorted(a for a, t in self._aliases.items() if t == name)
            out.append(CollectionInfo(name, int(meta["dim"]), points, meta["model_id"], aliases))
        return out

    def delete_collection(self, name: str) -> None:
        with self._mutex:
            name = self.resolve(name)
            shard = self._shards.pop(name, None)
            if shard is not None:
                shard.close()
            self._pending.pop(name, None)
            self._optimized.discard(name)
            # Rename first: a crash mid-delete leaves a hidden folder, never a half collection.
            trash = self.root / "collections" / f".trash-{name}-{uuid.uuid4().hex[:8]}"
            os.replace(self._dir(name), trash)
            self._aliases = {a: t for a, t in self._aliases.items() if t != name}
            write_json_atomic(self.root / "aliases.json", self._aliases)
            shutil.rmtree(trash, ignore_errors=True)

    def set_alias(self, alias: str, name: str) -> None:
        check_name(alias, "alias")
        with self._mutex:
            target = self.resolve(name)
            if alias in self._names():
                raise StoreError(f"alias {alias!r} would hide the collection of that name")
            self._aliases[alias] = target
            write_json_atomic(self.root / "aliases.json", self._aliases)

    def resolve(self, name_or_alias: str) -> str:
        check_name(name_or_alias)
        target = self._aliases.get(name_or_alias, name_or_alias)
        if not (self._dir(target) / META_FILE).exists():
            raise StoreError(f"no collection or alias named {name_or_alias!r} in {self.root}")
        return target

    # --- points ------------------------------------------------------------------------------------
    def _upsert_batch(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        name, shard = self._shard(name)
        try:
            points = [qe.Point(i, v.tolist(), p) for i, v, p in zip(ids, vectors, payloads)]
            shard.update(qe.UpdateOperation.upsert_points(points))
        except Exception as e:  # bad id (not a UUID) or wrong dimension
            raise StoreError(f"upsert into {name!r} failed: {e}") from e
        self._pending[name] += len(points)

    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Record]:
        name, shard = self._shard(name)
        if not ids:
            return []
        try:
            found = shard.retrieve(list(ids), True, with_vectors)
        except ValueError as e:
            raise StoreError(f"retrieve from {name!r}: {e}") from e
        by_id = {str(r.id): r for r in found}
        out = []
        for i in dict.fromkeys(ids):
            r = by_id.get(i)
            if r is not None:
                vec = np.asarray(r.vector, dtype=np.float32) if with_vectors else None
                out.append(Record(i, dict(r.payload or {}), vec))
        return out

    def set_payload(self, name: str, id: str, payload: dict[str, Any]) -> None:
        name, shard = self._shard(name)
        try:
            shard.update(qe.UpdateOperation.set_payload([id], payload))
        except Exception as e:  # "No point with id ..."
            raise StoreError(f"set_payload on {name!r}: {e}") from e

    def delete(self, name: str, ids: list[str]) -> None:
        name, shard = self._shard(name)
        if ids:
            shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def count(self, name: str, filter: Filter | None = None) -> int:
        _, shard = self._shard(name)
        return shard.count(qe.CountRequest(exact=True, filter=edge_filter(active(filter))))

    def scroll_page(
        self, name: str, fields: list[str] | None, offset: str | None, limit: int
    ) -> tuple[list[Record], str | None]:
        _, shard = self._shard(name)
        with_payload: Any = True if fields is None else (qe.PayloadSelector.Include(list(fields)) if fields else False)
        page, next_offset = shard.scroll(
            qe.ScrollRequest(offset=offset, limit=limit, with_payload=with_payload, with_vector=False)
        )
        records = [Record(str(r.id), dict(r.payload or {}), None) for r in page]
        return records, None if next_offset is None else str(next_offset)

    def _search(
        self,
        name: str,
        vector: np.ndarray,
        limit: int,
        offset: int,
        filter: Filter | None,
        score_threshold: float | None,
        exact: bool,
    ) -> list[Hit]:
        name, shard = self._shard(name)
        request = qe.SearchRequest(
            query=qe.Query.Nearest(vector.tolist()),
            limit=limit,
            offset=offset,
            filter=edge_filter(filter),
            params=qe.SearchParams(exact=exact),
            with_payload=True,
            score_threshold=score_threshold,
        )
        try:
            found = shard.search(request)
        except Exception as e:  # wrong query dimension
            raise StoreError(f"search in {name!r} failed: {e}") from e
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in found]

    # --- lifecycle ---------------------------------------------------------------------------------
    def optimize(self, name: str) -> bool:
        """Build the HNSW index for what was written (blocking); True when anything changed."""
        name, shard = self._shard(name)
        changed = shard.optimize()
        self._pending[name] = 0
        self._optimized.add(name)
        return changed

    def flush(self, index: bool = True) -> None:
        """Flush every open shard; with index, optimize first where enough points arrived (or after a fresh open)."""
        self._check_open()
        with self._mutex:
            for name, shard in self._shards.items():
                # A shard reopened after a crash has its points back but its index to rebuild.
                if index and (self._pending[name] >= self.optimize_every or name not in self._optimized):
                    self.optimize(name)
                shard.flush()

    def close(self) -> None:
        """Flush, close every shard and release the lock; idempotent."""
        if self._lock_fd is None:
            return
        with self._mutex:
            try:
                self.flush()
            finally:
                for shard in self._shards.values():
                    shard.close()
                self._shards.clear()
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None
