"""Vector storage behind one small interface: embedded Qdrant Edge by default, a Qdrant server when given a url.

Backends import lazily, so using one never loads the other's client library.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from photoseek.indexer.store.base import (
    INDEX_KINDS,
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

if TYPE_CHECKING:
    from photoseek.indexer.store.edge import EdgeStore
    from photoseek.indexer.store.server import ServerStore

DEFAULT_STORE_DIR = "./photoseek-data"

__all__ = [
    "INDEX_KINDS",
    "CollectionInfo",
    "EdgeStore",
    "Filter",
    "Hit",
    "Match",
    "MatchAny",
    "Range",
    "Record",
    "ServerStore",
    "StoreError",
    "VectorStore",
    "open_store",
]


def open_store(
    store_dir: str | None = None, qdrant_url: str | None = None, api_key: str | None = None, **options: Any
) -> VectorStore:
    """A Qdrant server store when `qdrant_url` is given (api key default: $QDRANT_API_KEY), else Edge at `store_dir`
    (or, when a running `photoseek serve` holds that folder, the service that owns it)."""
    if qdrant_url:
        from photoseek.indexer.store.server import ServerStore

        key = api_key if api_key is not None else os.environ.get("QDRANT_API_KEY") or None
        return ServerStore(url=qdrant_url, api_key=key, **options)
    from photoseek.indexer.store.edge import EdgeStore

    folder = store_dir or DEFAULT_STORE_DIR
    try:
        return EdgeStore(folder, **options)
    except StoreError:
        # Held by another process: if that is a running photoseek service, write through it.
        from photoseek.indexer.store.remote import RemoteStore, read_service_file

        service = read_service_file(folder)
        if service is None:
            raise
        return RemoteStore(service["url"], service["admin_token"])


def __getattr__(name: str) -> Any:
    if name == "EdgeStore":
        from photoseek.indexer.store.edge import EdgeStore

        return EdgeStore
    if name == "ServerStore":
        from photoseek.indexer.store.server import ServerStore

        return ServerStore
    raise AttributeError(name)
