"""The search logic as a plain class: query -> vector -> Qdrant -> results. Serve deployments only wrap it.

The searcher serves one model's collection (`<alias>-<model_id>`, the one `photoseek index` fills for that
model), not whatever the alias points at: a query vector from model A is meaningless in model B's space, so
moving the alias to a new model's collection never silently breaks a running service.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from photoseek.indexer.decode import DecodeFailure, DecodeLimits, decode_bytes, thumbnail_file
from photoseek.indexer.pipeline import DEFAULT_ALIAS, collection_name
from photoseek.indexer.store import StoreError, VectorStore
from photoseek.serving.query import NotFound, QueryError, SearchQuery, check_id

HIDDEN_PAYLOAD = ("dirs", "paths")  # derived for filtering / already at the result's top level
THUMB_SIDES = (128, 256, 512)
READY_TTL_S = 1.0


@dataclass
class Result:
    id: str
    score: float
    paths: list[str]
    payload: dict[str, Any]


@dataclass
class SearchResult:
    results: list[Result]
    kind: str
    took_ms: float
    collection: str
    model_id: str
    total_candidates: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TextEmbedder:
    """Texts -> (B, D) with one loaded encoder (a Serve deployment batches calls into it)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode_texts(list(texts))


class ImageEmbedder:
    """Uploaded image bytes -> (D,) through the indexer's decode stage (same limits, same preprocessing)."""

    def __init__(self, encoder: Any, limits: DecodeLimits = DecodeLimits()) -> None:
        self.encoder, self.limits = encoder, limits

    def decode(self, data: bytes) -> np.ndarray:
        """uint8 (S, S, 3); QueryError with the decoder's reason when the bytes are not a usable photo."""
        try:
            return decode_bytes(data, self.encoder.image_size, self.limits).image
        except DecodeFailure as e:
            raise QueryError(f"image could not be used ({e.reason.value}): {e.detail}") from None

    def __call__(self, images: list[bytes]) -> np.ndarray:
        batch = np.stack([self.decode(d) for d in images])  # (B, S, S, 3)
        return self.encoder.encode_images(batch)


class Searcher:
    """Searches one model's collection; optional embedders let it answer text and image queries itself."""

    def __init__(
        self,
        store: VectorStore,
        model_id: str,
        dim: int,
        alias: str = DEFAULT_ALIAS,
        embed_text: Callable[[list[str]], np.ndarray] | None = None,
        embed_image: Callable[[list[bytes]], np.ndarray] | None = None,
        limits: DecodeLimits = DecodeLimits(),
        photo_roots: list[str] | None = None,
        thumb_cache: int = 2048,
    ) -> None:
        self.store, self.model_id, self.dim = store, model_id, dim
        self.collection = collection_name(alias, model_id)
        self.embed_text, self.embed_image = embed_text, embed_image
        self.limits = limits
        self.roots = [os.path.realpath(r) for r in photo_roots] if photo_roots else None
        self._thumbs: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._thumb_cache = thumb_cache
        self._lock = threading.Lock()
        self._ready_until = 0.0  # the collection exists; checked again after READY_TTL_S
        self._points, self._count_until = 0, 0.0

    @classmethod
    def from_encoder(cls, store: VectorStore, encoder: Any, alias: str = DEFAULT_ALIAS, **kw: Any) -> "Searcher":
        limits = kw.pop("limits", DecodeLimits())
        return cls(store, encoder.model_id, encoder.dim, alias, TextEmbedder(encoder),
                   ImageEmbedder(encoder, limits) if encoder.has_images else None, limits, **kw)

    # --- health ------------------------------------------------------------------------------------
    def ready(self) -> bool:
        """Whether the collection exists (remembered for a second once it does: it is asked on every search)."""
        now = time.monotonic()
        if now < self._ready_until:
            return True
        if self.store.has_collection(self.collection):
            self._ready_until = now + READY_TTL_S
            return True
        return False

    def changed(self) -> None:
        """The store was written to: count again at the next health check."""
        self._count_until = 0.0

    def health(self) -> dict[str, Any]:
        """Status for probes and the page; the point count (an exact count: 8 ms at 100k) is reused for 2 s."""
        now = time.monotonic()
        if now >= self._count_until:
            self._points = self.store.count(self.collection) if self.ready() else 0
            self._count_until = now + 2.0
        points = self._points
        return {"status": "ok", "model_id": self.model_id, "collection": self.collection, "dim": self.dim,
                "indexed": self.ready(), "points": points}

    # --- search ------------------------------------------------------------------------------------
    def vector_of(self, query: SearchQuery) -> np.ndarray:
        """The query's vector (D,), embedding text or image with this searcher's own embedders."""
        if query.vector is not None:
            vector = np.asarray(query.vector, dtype=np.float32)
            if vector.shape != (self.dim,):
                raise QueryError(f"vector has {vector.size} numbers; this model's vectors have {self.dim}")
            return vector
        if query.text is not None:
            if self.embed_text is None:
                raise QueryError("this searcher has no text encoder")
            return self.embed_text([query.text])[0]
        if query.image is not None:
            if self.embed_image is None:
                raise QueryError("this model has no image tower; search by text")
            return self.embed_image([query.image])[0]
        found = self._retrieve(check_id(query.id), with_vector=True)
        return np.asarray(found.vector, dtype=np.float32)

    def search(self, query: SearchQuery) -> SearchResult:
        t0 = time.perf_counter()
        vector = self.vector_of(query)
        hits = self._search(query, vector)
        took = (time.perf_counter() - t0) * 1000
        return SearchResult(hits, query.kind, round(took, 3), self.collection, self.model_id)

    def _search(self, query: SearchQuery, vector: np.ndarray) -> list[Result]:
        if not self.ready():
            return []
        store_filter = query.filter.to_filter()
        try:
            if query.id is None:
                hits = self.store.search(self.collection, vector, query.limit, query.offset, store_filter,
                                         query.score_threshold)
            else:  # "more like this": the photo itself is not a result; page over the rest
                hits = self.store.search(self.collection, vector, query.offset + query.limit + 1, 0,
                                         store_filter, query.score_threshold)
                hits = [h for h in hits if h.id != query.id][query.offset : query.offset + query.limit]
        except StoreError as e:
            raise QueryError(str(e)) from None
        return [self._result(h.id, h.score, h.payload) for h in hits]

    @staticmethod
    def _result(id: str, score: float, payload: dict[str, Any]) -> Result:
        shown = {k: v for k, v in payload.items() if k not in HIDDEN_PAYLOAD}
        return Result(id, round(float(score), 6), list(payload.get("paths", [])), shown)

    # --- photos ------------------------------------------------------------------------------------
    def _retrieve(self, id: str, with_vector: bool = False) -> Any:
        found = self.store.retrieve(self.collection, [id], with_vectors=with_vector) if self.ready() else []
        if not found:
            raise NotFound(f"no photo with id {id}")
        return found[0]

    def photo(self, id: str) -> Result:
        rec = self._retrieve(check_id(id))
        return self._result(rec.id, 1.0, rec.payload)

    def thumbnail(self, id: str, side: int = 256) -> bytes:
        """A JPEG of the indexed photo, read from a path the store holds for it (never one a client names)."""
        id = check_id(id)
        if side not in THUMB_SIDES:
            raise QueryError(f"thumbnail size must be one of {THUMB_SIDES}")
        key = (id, side)
        with self._lock:
            if key in self._thumbs:
                self._thumbs.move_to_end(key)
                return self._thumbs[key]
        reasons = []
        for path in self._retrieve(id).payload.get("paths", []):
            if not self._allowed(path):
                reasons.append("outside the photo roots")
                continue
            try:
                data = thumbnail_file(path, side, self.limits)
            except DecodeFailure as e:
                reasons.append(f"{e.reason.value}")
                continue
            with self._lock:
                self._thumbs[key] = data
                while len(self._thumbs) > self._thumb_cache:
                    self._thumbs.popitem(last=False)
            return data
        raise NotFound(f"photo {id} has no readable file ({'; '.join(reasons) or 'no paths'})")

    def _allowed(self, path: str) -> bool:
        if self.roots is None:
            return True
        real = os.path.realpath(path)
        return any(real == r or real.startswith(r.rstrip("/") + "/") for r in self.roots)
