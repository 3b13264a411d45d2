"""The vector store interface: typed values in and out, two interchangeable backends (Edge, Qdrant server).

Ids are the UUID strings of `records.point_id`. Distance is cosine, so stored vectors come back normalised.
A collection name may be an alias wherever a method takes one.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

INDEX_KINDS = ("keyword", "integer", "float", "bool")
DEFAULT_EXACT_BELOW = 20_000
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class StoreError(RuntimeError):
    """A failure the caller can act on: bad name, dimension or model mismatch, store locked, missing point."""


@dataclass(frozen=True)
class Match:
    """Payload `key` equals `value` (for a list-valued field: contains it)."""

    key: str
    value: str | int | bool


@dataclass(frozen=True)
class MatchAny:
    """Payload `key` equals any of `values` (for a list-valued field: shares one with them)."""

    key: str
    values: list[str] | list[int]


@dataclass(frozen=True)
class Range:
    """Numeric payload `key` within the given bounds (None leaves a side open)."""

    key: str
    gte: float | None = None
    lte: float | None = None
    gt: float | None = None
    lt: float | None = None


Condition = Union[Match, MatchAny, Range]


@dataclass
class Filter:
    """AND of conditions; an empty filter matches everything."""

    must: list[Condition] = field(default_factory=list)


@dataclass
class Hit:
    """One search result, best first."""

    id: str
    score: float
    payload: dict[str, Any]


@dataclass
class Record:
    """A stored point; `vector` only when asked for (normalised, since distance is cosine)."""

    id: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None


@dataclass
class CollectionInfo:
    """What `collections()` reports for one collection."""

    name: str
    dim: int
    points: int
    model_id: str
    aliases: list[str] = field(default_factory=list)


def check_name(name: str, what: str = "collection") -> str:
    """Reject names that could escape a folder or confuse the server; return the name unchanged."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):  # fullmatch: "$" would allow a trailing \n
        raise StoreError(f"invalid {what} name {name!r}: use 1-64 characters from A-Z a-z 0-9 _ -")
    return name


def check_spec(name: str, dim: int, payload_indexes: dict[str, str]) -> None:
    """Fail early on a bad name, dimension or index kind, before either backend touches anything."""
    check_name(name)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise StoreError(f"collection {name!r}: dim must be a positive int, not {dim!r}")
    for key, kind in payload_indexes.items():
        if kind not in INDEX_KINDS:
            raise StoreError(f"payload index {key!r}: kind {kind!r} is not one of {INDEX_KINDS}")


def active(filter: Filter | None) -> Filter | None:
    """None for a missing or empty filter, so backends only ever see real conditions."""
    return filter if filter is not None and filter.must else None


class VectorStore(ABC):
    """A small, typed vector store. Subclasses implement the storage; filtered-search planning lives here."""

    def __init__(self, exact_below: int = DEFAULT_EXACT_BELOW, batch_size: int = 512) -> None:
        self.exact_below = exact_below  # filtered searches over fewer matching points run brute force
        self.batch_size = batch_size

    # --- collections -------------------------------------------------------------------------------
    @abstractmethod
    def ensure_collection(self, name: str, dim: int, model_id: str, payload_indexes: dict[str, str]) -> None:
        """Create the collection (cosine) with these payload indexes, or check an existing one matches dim and model."""

    @abstractmethod
    def collections(self) -> list[CollectionInfo]:
        """Every collection, sorted by name."""

    def has_collection(self, name: str) -> bool:
        """True when `name` is a collection or an alias of one."""
        try:
            self.resolve(name)
        except StoreError:
            return False
        return True

    @abstractmethod
    def delete_collection(self, name: str) -> None:
        """Drop the collection (through an alias: its target) and the aliases that point at it."""

    @abstractmethod
    def set_alias(self, alias: str, name: str) -> None:
        """Point `alias` at collection `name`, creating or atomically repointing it."""

    @abstractmethod
    def resolve(self, name_or_alias: str) -> str:
        """The collection a name or alias designates; StoreError when neither exists."""

    # --- points ------------------------------------------------------------------------------------
    def upsert(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        """Insert or overwrite points; vectors (N, D) float32. Sent in batches of `batch_size`."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not (len(ids) == len(vectors) == len(payloads)):
            raise StoreError(
                f"upsert wants N ids, (N, D) vectors and N payloads; got {len(ids)}, {vectors.shape}, {len(payloads)}"
            )
        if not np.isfinite(vectors).all():
            raise StoreError("upsert: vectors contain NaN or inf")
        for start in range(0, len(ids), self.batch_size):
            stop = start + self.batch_size
            self._upsert_batch(name, list(ids[start:stop]), vectors[start:stop], list(payloads[start:stop]))

    @abstractmethod
    def _upsert_batch(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        """Write one batch (already validated)."""

    @abstractmethod
    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Record]:
        """The stored points among `ids`, in the order asked; missing ids are simply absent."""

    @abstractmethod
    def set_payload(self, name: str, id: str, payload: dict[str, Any]) -> None:
        """Merge these keys into one point's payload; StoreError when the point does not exist."""

    @abstractmethod
    def delete(self, name: str, ids: list[str]) -> None:
        """Delete points; ids not present are ignored."""

    @abstractmethod
    def count(self, name: str, filter: Filter | None = None) -> int:
        """Exact number of points matching the filter."""

    def scroll(self, name: str, fields: list[str] | None = None, batch: int = 1000) -> Iterator[Record]:
        """Every point once (no vectors), payload restricted to `fields` when given."""
        offset: str | None = None
        while True:
            page, offset = self.scroll_page(name, fields, offset, batch)
            yield from page
            if offset is None:
                return

    @abstractmethod
    def scroll_page(
        self, name: str, fields: list[str] | None, offset: str | None, limit: int
    ) -> tuple[list[Record], str | None]:
        """One page of points in id order from `offset` (None: the start), and the next page's offset (None: done)."""

    # --- search ------------------------------------------------------------------------------------
    def search(
        self,
        name: str,
        vector: np.ndarray,
        limit: int = 10,
        offset: int = 0,
        filter: Filter | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        """Nearest points by cosine, best first.

        A selective filter makes HNSW walk a graph whose neighbours mostly fail the filter, and recall
        collapses (0.3-0.5 at 1M with a 1 % filter); so when few points match, search them exactly.
        """
        if limit <= 0:
            return []
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        filter = active(filter)
        exact = False
        if filter is not None:
            matching = self.count(name, filter)
            if matching <= offset:
                return []
            exact = matching < self.exact_below
        return self._search(name, vector, limit, offset, filter, score_threshold, exact)

    @abstractmethod
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
        """Run one search; `exact` asks for brute force over the (filtered) points."""

    # --- lifecycle ---------------------------------------------------------------------------------
    @abstractmethod
    def flush(self, index: bool = True) -> None:
        """Make every write durable; with index=True also build the vector index where the backend needs it
        (slow: long writers flush with index=False as they go and index once at the end)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release resources; idempotent."""

    def __enter__(self) -> VectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
