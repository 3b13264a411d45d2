"""A store reached through a running photoseek service that owns an embedded store folder.

Only one process may open an Edge store. While `photoseek serve` holds it, `photoseek index` and
`photoseek info` on the same folder send their store operations to the service instead: the service writes
`service.json` (url and a private admin token, readable by the folder's owner only) into the folder, and
`open_store` switches to this backend when the folder is locked and that file is there.

Vectors travel as base64 float32, everything else as JSON; one HTTP request per operation or batch.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from photoseek.indexer.store.base import (
    CollectionInfo,
    Filter,
    Hit,
    Match,
    MatchAny,
    Range,
    Record,
    StoreError,
    VectorStore,
)

SERVICE_FILE = "service.json"
ADMIN_PATH = "/v1/admin/store"
ADMIN_HEADER = "X-Photoseek-Admin"


# --- wire format (shared with the service's dispatcher) ------------------------------------------------
def vectors_to_wire(vectors: np.ndarray) -> dict[str, Any]:
    v = np.ascontiguousarray(vectors, dtype="<f4")
    return {"shape": list(v.shape), "data": base64.b64encode(v.tobytes()).decode()}


def vectors_from_wire(obj: dict[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(obj["data"]), dtype="<f4").reshape(obj["shape"]).astype(np.float32)


def filter_to_wire(filter: Filter | None) -> list[dict[str, Any]] | None:
    if filter is None:
        return None
    return [{"type": type(c).__name__, **asdict(c)} for c in filter.must]


def filter_from_wire(obj: list[dict[str, Any]] | None) -> Filter | None:
    if obj is None:
        return None
    kinds = {"Match": Match, "MatchAny": MatchAny, "Range": Range}
    must = []
    for c in obj:
        c = dict(c)
        kind = kinds.get(c.pop("type", None))
        if kind is None:
            raise StoreError(f"unknown filter condition {c!r}")
        must.append(kind(**c))
    return Filter(must)


def record_to_wire(r: Record) -> dict[str, Any]:
    return {"id": r.id, "payload": r.payload,
            "vector": None if r.vector is None else vectors_to_wire(np.asarray(r.vector)[None])}


def record_from_wire(obj: dict[str, Any]) -> Record:
    vector = None if obj.get("vector") is None else vectors_from_wire(obj["vector"])[0]
    return Record(obj["id"], obj["payload"], vector)


def error_text(e: urllib.error.HTTPError) -> str:
    """The service's `{"error": ...}` message of an HTTP error reply (else its raw text, cut short)."""
    text = e.read().decode(errors="replace")[:2000]
    try:
        return str(json.loads(text).get("error", text))
    except (json.JSONDecodeError, AttributeError):
        return text


# --- client ----------------------------------------------------------------------------------------------
def read_service_file(store_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    path = Path(store_dir) / SERVICE_FILE
    try:
        info = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, PermissionError):
        return None
    return info if isinstance(info, dict) and info.get("url") and info.get("admin_token") else None


class RemoteStore(VectorStore):
    """The VectorStore interface over the service's admin endpoint."""

    def __init__(self, url: str, admin_token: str, timeout: float = 600.0) -> None:
        super().__init__()
        self.url = url.rstrip("/") + ADMIN_PATH
        self.token = admin_token
        self.timeout = timeout

    def _call(self, op: str, **args: Any) -> Any:
        body = json.dumps({"op": op, "args": args}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", ADMIN_HEADER: self.token})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())["result"]
        except urllib.error.HTTPError as e:
            raise StoreError(f"service store {op}: HTTP {e.code}: {error_text(e)}") from None
        except (urllib.error.URLError, OSError) as e:
            raise StoreError(f"service at {self.url} did not answer ({e}); is `photoseek serve` running?") from None

    def ensure_collection(self, name: str, dim: int, model_id: str, payload_indexes: dict[str, str]) -> None:
        self._call("ensure_collection", name=name, dim=int(dim), model_id=model_id, payload_indexes=payload_indexes)

    def collections(self) -> list[CollectionInfo]:
        return [CollectionInfo(**c) for c in self._call("collections")]

    def delete_collection(self, name: str) -> None:
        self._call("delete_collection", name=name)

    def set_alias(self, alias: str, name: str) -> None:
        self._call("set_alias", alias=alias, name=name)

    def resolve(self, name_or_alias: str) -> str:
        return self._call("resolve", name_or_alias=name_or_alias)

    def _upsert_batch(self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        self._call("upsert", name=name, ids=ids, vectors=vectors_to_wire(vectors), payloads=payloads)

    def retrieve(self, name: str, ids: list[str], with_vectors: bool = False) -> list[Record]:
        return [record_from_wire(r) for r in self._call("retrieve", name=name, ids=ids, with_vectors=with_vectors)]

    def set_payload(self, name: str, id: str, payload: dict[str, Any]) -> None:
        self._call("set_payload", name=name, id=id, payload=payload)

    def delete(self, name: str, ids: list[str]) -> None:
        self._call("delete", name=name, ids=ids)

    def count(self, name: str, filter: Filter | None = None) -> int:
        return int(self._call("count", name=name, filter=filter_to_wire(filter)))

    def scroll_page(
        self, name: str, fields: list[str] | None, offset: str | None, limit: int
    ) -> tuple[list[Record], str | None]:
        page = self._call("scroll_page", name=name, fields=fields, offset=offset, limit=limit)
        return [record_from_wire(r) for r in page["records"]], page["next"]

    def _search(self, name: str, vector: np.ndarray, limit: int, offset: int, filter: Filter | None,
                score_threshold: float | None, exact: bool) -> list[Hit]:
        hits = self._call("search", name=name, vector=vectors_to_wire(vector[None]), limit=limit, offset=offset,
                          filter=filter_to_wire(filter), score_threshold=score_threshold)
        return [Hit(**h) for h in hits]

    def search(self, name: str, vector: np.ndarray, limit: int = 10, offset: int = 0,
               filter: Filter | None = None, score_threshold: float | None = None) -> list[Hit]:
        # the owner plans the filtered search against its own counts: one round trip, not two
        return self._search(name, np.asarray(vector, dtype=np.float32).reshape(-1), limit, offset, filter,
                            score_threshold, False)

    def flush(self, index: bool = True) -> None:
        self._call("flush", index=index)

    def close(self) -> None:
        """Nothing to release here; the service owns the store (and flushes it when it stops)."""
