"""Server backend: a Qdrant server through qdrant-client (or any QdrantClient, e.g. local mode in tests).

Collection metadata: photoseek keeps `photoseek_model_id` and `photoseek_created` in the collection's own
metadata (Qdrant >= 1.16). A server that drops it (older versions ignore the field) gets a fallback: a
hidden collection `photoseek_meta` with one point per collection (id uuid5 of the name, a 1-d vector,
payload {collection, dim, model_id, created}). `collections()` never lists it and its name is reserved.

Point operations pass the name straight through, because Qdrant resolves aliases itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

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
    check_name,
    check_spec,
)

META_COLLECTION = "photoseek_meta"
_META_NS = uuid.UUID("0b9a7f52-3f4e-4c1e-9d0a-6a2f1f0c5e11")  # fallback metadata point ids; never change


@contextmanager
def _errors(what: str) -> Iterator[None]:
    """Turn client failures (missing collection or point, bad id, server error) into StoreError."""
    try:
        yield
    except StoreError:
        raise
    except Exception as e:
        raise StoreError(f"{what}: {type(e).__name__}: {e}") from e


def server_filter(filter: Filter | None) -> models.Filter | None:
    """Our typed filter as a qdrant-client filter."""
    if filter is None:
        return None
    conditions: list[Any] = []
    for c in filter.must:
        if isinstance(c, Match):
            conditions.append(models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value)))
        elif isinstance(c, MatchAny):
            conditions.append(models.FieldCondition(key=c.key, match=models.MatchAny(any=list(c.values))))
        elif isinstance(c, Range):
            rng = models.Range(gte=c.gte, lte=c.lte, gt=c.gt, lt=c.lt)
            conditions.append(models.FieldCondition(key=c.key, range=rng))
        else:
            raise StoreError(f"unsupported filter condition {c!r}")
    return models.Filter(must=conditions)


class ServerStore(VectorStore):
    """Qdrant over the network (gRPC), or whatever QdrantClient the caller passes in."""

    def __init__(
        self,
        client: QdrantClient | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        exact_below: int = DEFAULT_EXACT_BELOW,
        batch_size: int = 256,
    ) -> None:
        super().__init__(exact_below=exact_below, batch_size=batch_size)
        if client is None:
            if url is None:
                raise StoreError("ServerStore needs a QdrantClient or a url")
            client = QdrantClient(url=url, api_key=api_key, prefer_grpc=True)
        self._owns_client = url is not None
        self.client = client
        opts = client.init_options
        # Local mode searches by brute force and ignores payload indexes (and warns about both).
        self._local = opts.get("location") == ":memory:" or opts.get("path") is not None

    # --- metadata ----------------------------------------------------------------------------------
    def _alias_map(self) -> dict[str, str]:
        with _errors("list aliases"):
            return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def _collection_names(self) -> list[str]:
        with _errors("list collections"):
            names = [c.name for c in self.client.get_collections().collections]
        return sorted(n for n in names if n != META_COLLECTION)

    def _describe(self, name: str) -> tuple[int, str]:
        """(dim, model_id) of a collection; model_id "" when photoseek did not create it."""
        with _errors(f"describe collection {name!r}"):
            info = self.client.get_collection(name)
        vectors = info.config.params.vectors
        if not isinstance(vectors, models.VectorParams):
            raise StoreError(f"collection {name!r} uses named vectors; photoseek writes one unnamed vector")
        meta = info.config.metadata or {}
        model_id = meta.get("photoseek_model_id")
        if model_id is None:
            model_id = self._fallback_meta(name).get("model_id", "")
        return int(vectors.size), str(model_id)

    def _fallback_meta(self, name: str) -> dict[str, Any]:
        if not self.client.collection_exists(META_COLLECTION):
            return {}
        found = self.client.retrieve(META_COLLECTION, ids=[str(uuid.uuid5(_META_NS, name))], with_payload=True)
        return dict(found[0].payload or {}) if found else {}

    def _write_fallback_meta(self, name: str, meta: dict[str, Any]) -> None:
        if not self.client.collection_exists(META_COLLECTION):
            params = models.VectorParams(size=1, distance=models.Distance.COSINE)
            self.client.create_collection(META_COLLECTION, vectors_config=params)
        point = models.PointStruct(id=str(uuid.uuid5(_META_NS, name)), vector=[1.0], payload=meta)
        self.client.upsert(META_COLLECTION, points=[point], wait=True)

    # --- collections -------------------------------------------------------------------------------
    def ensure_collection(self, name: str, dim: int, model_id: str, payload_indexes: dict[str, str]) -> None:
        """Create (cosine, HNSW m=16 ef_construct=100) or check dim and model; add missing payload indexes."""
        check_spec(name, dim, payload_indexes)
        dim = int(dim)
        if name == META_COLLECTION:
            raise StoreError(f"{META_COLLECTION!r} is reserved for photoseek's own metadata")
        target = self._alias_map().get(name, name)
        if target in self._collection_names():
            have_dim, have_model = self._describe(target)
            if have_dim != dim or have_model != model_id:
                raise StoreError(
                    f"collection {target!r} holds dim {have_dim} from model {have_model!r}, "
                    f"not dim {dim} from {model_id!r}: index into a new collection"
                )
        else:
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            meta = {"photoseek_model_id": model_id, "photoseek_created": created}
            with _errors(f"create collection {target!r}"):
                self.client.create_collection(
                    target,
                    vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                    hnsw_config=models.HnswConfigDiff(m=16, ef_construct=100, full_scan_threshold=10_000),
                    metadata=meta,
                )
                if not (self.client.get_collection(target).config.metadata or {}).get("photoseek_model_id"):
                    fallback = {"collection": target, "dim": dim, "model_id": model_id, "created": created}
                    self._write_fallback_meta(target, fallback)
        self._ensure_indexes(target, payload_indexes)

    def _ensure_indexes(self, name: str, payload_indexes: dict[str, str]) -> None:
        if self._local:
            return  # local mode keeps no payload indexes
        with _errors(f"payload indexes of {name!r}"):
            existing = self.client.get_collection(name).payload_schema
            for key, kind in payload_indexes.items():
                schema = models.PayloadSchemaType(kind)
                if key in existing:
                    if existing[key].data_type != schema:
                        raise StoreError(f"collection {name!r}: field {key!r} is indexed as {existing[key].data_type}")
                    continue
                self.client.create_payload_index(name, key, field_schema=schema, wait=True)

    def collections(self) -> list[CollectionInfo]:
        aliases = self._alias_map()
        out = []
        for name in self._collection_names():
            dim, model_id = self._describe(name)
            points = self.count(name)
            out.append(CollectionInfo(name, dim, points, model_id, sorted(a for a, t in aliases.items() if t == name)))
        return out

    def delete_collection(self, name: str) -> None:
        target = self.resolve(name)
        ops: list[Any] = [
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=a))
            for a, t in self._alias_map().items()
            if t == target
        ]
        with _errors(f"delete collection {target!r}"):
            if ops:
                self.client.update_collection_aliases(change_aliases_operations=ops)
            self.client.delete_collection(target)
            if self.client.collection_exists(META_COLLECTION):
                selector = models.PointIdsList(points=[str(uuid.uuid5(_META_NS, target))])
                self.client.delete(META_COLLECTION, points_selector=selector, wait=True)

    def set_alias(self, alias: str, name: str) -> None:
        """Create or repoint `alias` in one aliases request (atomic on the server)."""
        check_name(alias, "alias")
        target = self.resolve(name)
        if alias in self._collection_names() or alias == META_COLLECTION:
            raise StoreError(f"alias {alias!r} would hide the collection of that name")
        ops: list[Any] = []
        if alias in self._alias_map():
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        create = models.CreateAlias(collection_name=target, alias_name=alias)
        ops.append(models.CreateAliasOperation(create_alias=create))
        with _errors(f"set alias {alias!r}"):
            self.client.update_collection_aliases(change_aliases_operations=ops)

    def resolve(self, name_or_alias: str) -> str:
        check_name(name_or_alias)
        aliases = self._alias_map()
        if name_or_alias in aliases:
            return aliases[name_or_alias]
        if name_or_alias != META_COLLECTION and name_or_alias in self._collection_names():
            return name_or_alias
        raise StoreError(f"no collection or alias named {name_or_alias!r}")

    # --- points ------------------------------------------------------------------------------------
    def _upsert_batch(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        batch = models.Batch(ids=list(ids), vectors=vectors.tolist(), payloads=payloads)
        with _errors(f"upsert into {check_name(name)!r}"):
            self.client.upsert(name, points=batch, wait=True)

    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Record]:
        if not ids:
            return []
        with _errors(f"retrieve from {check_name(name)!r}"):
            found = self.client.retrieve(name, ids=list(ids), with_payload=True, with_vectors=with_vectors)
        by_id = {str(r.id): r for r in found}
        out = []
        for i in dict.fromkeys(ids):
            r = by_id.get(i)
            if r is not None:
                vec = np.asarray(r.vector, dtype=np.float32) if with_vectors else None
                out.append(Record(i, dict(r.payload or {}), vec))
        return out

    def set_payload(self, name: str, id: str, payload: dict[str, Any]) -> None:
        with _errors(f"set_payload on {check_name(name)!r}, point {id}"):
            self.client.set_payload(name, payload=payload, points=[id], wait=True)

    def delete(self, name: str, ids: list[str]) -> None:
        if ids:
            with _errors(f"delete from {check_name(name)!r}"):
                self.client.delete(name, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    def count(self, name: str, filter: Filter | None = None) -> int:
        with _errors(f"count in {check_name(name)!r}"):
            return self.client.count(name, count_filter=server_filter(active(filter)), exact=True).count

    def scroll_page(
        self, name: str, fields: list[str] | None, offset: str | None, limit: int
    ) -> tuple[list[Record], str | None]:
        with_payload: Any = True if fields is None else (list(fields) if fields else False)
        with _errors(f"scroll {check_name(name)!r}"):
            page, next_offset = self.client.scroll(
                name, limit=limit, offset=offset, with_payload=with_payload, with_vectors=False
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
        params = None if self._local else models.SearchParams(exact=exact)
        with _errors(f"search in {check_name(name)!r}"):
            found = self.client.query_points(
                name,
                query=vector.tolist(),
                limit=limit,
                offset=offset,
                query_filter=server_filter(filter),
                search_params=params,
                score_threshold=score_threshold,
                with_payload=True,
            ).points
        return [Hit(str(p.id), float(p.score), dict(p.payload or {})) for p in found]

    # --- lifecycle ---------------------------------------------------------------------------------
    def flush(self, index: bool = True) -> None:
        """Nothing to do: every write waited for the server's acknowledgement."""

    def close(self) -> None:
        """Close the client when this store created it; a client passed in stays the caller's."""
        if self._owns_client:
            self.client.close()
            self._owns_client = False
