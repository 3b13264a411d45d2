"""The owner's side of `RemoteStore`: run one whitelisted store operation from its JSON form."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from photoseek.indexer.store import VectorStore
from photoseek.indexer.store.remote import filter_from_wire, record_to_wire, vectors_from_wire
from photoseek.serving.query import QueryError


def run_store_op(store: VectorStore, op: str, args: dict[str, Any]) -> Any:
    """The JSON-able result of `op`; QueryError for an unknown op or bad arguments, StoreError passes through."""
    try:
        if op == "ensure_collection":
            return store.ensure_collection(args["name"], int(args["dim"]), args["model_id"], args["payload_indexes"])
        if op == "collections":
            return [asdict(c) for c in store.collections()]
        if op == "delete_collection":
            return store.delete_collection(args["name"])
        if op == "set_alias":
            return store.set_alias(args["alias"], args["name"])
        if op == "resolve":
            return store.resolve(args["name_or_alias"])
        if op == "upsert":
            return store.upsert(args["name"], list(args["ids"]), vectors_from_wire(args["vectors"]),
                                list(args["payloads"]))
        if op == "retrieve":
            found = store.retrieve(args["name"], list(args["ids"]), bool(args.get("with_vectors")))
            return [record_to_wire(r) for r in found]
        if op == "set_payload":
            return store.set_payload(args["name"], args["id"], args["payload"])
        if op == "delete":
            return store.delete(args["name"], list(args["ids"]))
        if op == "count":
            return store.count(args["name"], filter_from_wire(args.get("filter")))
        if op == "scroll_page":
            records, nxt = store.scroll_page(args["name"], args.get("fields"), args.get("offset"),
                                             int(args.get("limit", 1000)))
            return {"records": [record_to_wire(r) for r in records], "next": nxt}
        if op == "search":
            hits = store.search(args["name"], vectors_from_wire(args["vector"])[0], int(args["limit"]),
                                int(args.get("offset", 0)), filter_from_wire(args.get("filter")),
                                args.get("score_threshold"))
            return [asdict(h) for h in hits]
        if op == "flush":
            return store.flush(index=bool(args.get("index", True)))
    except (KeyError, TypeError, ValueError) as e:  # StoreError (a RuntimeError) passes through
        raise QueryError(f"store op {op}: bad arguments ({type(e).__name__}: {e})") from None
    raise QueryError(f"unknown store op {op!r}")
