"""gRPC messages <-> the same SearchQuery / SearchResult the HTTP API uses (one validation path for both)."""

from __future__ import annotations

from typing import Any

import orjson

from photoseek.serving.auth import KeyCheck
from photoseek.serving.protos import photoseek_pb2 as pb
from photoseek.serving.query import QueryError, SearchQuery, parse_query
from photoseek.serving.searcher import SearchResult


def _field(c: pb.FieldCondition) -> dict[str, Any]:
    out: dict[str, Any] = {"key": c.key}
    which = c.WhichOneof("condition")
    if which:
        out["match"] = getattr(c, which)
    if c.any_string:
        out["any"] = list(c.any_string)
    elif c.any_int:
        out["any"] = list(c.any_int)
    for op in ("gte", "gt", "lte", "lt"):
        if c.HasField(op):
            out[op] = getattr(c, op)
    return out


def query_from_proto(req: pb.SearchRequest, max_upload_bytes: int, dim: int) -> SearchQuery:
    which = req.WhichOneof("query")
    if which is None:
        raise QueryError("set one of text, image, id or vector")
    body: dict[str, Any] = {"limit": req.limit or 10, "offset": req.offset}
    if which == "vector":
        body["vector"] = list(req.vector.values)
    elif which != "image":
        body[which] = getattr(req, which)
    if req.HasField("score_threshold"):
        body["score_threshold"] = req.score_threshold
    if req.HasField("filter"):
        f = req.filter
        spec: dict[str, Any] = {}
        if f.path_prefix:
            spec["path_prefix"] = f.path_prefix
        if f.taken_after:
            spec["taken_after"] = f.taken_after
        if f.taken_before:
            spec["taken_before"] = f.taken_before
        if f.formats:
            spec["format"] = list(f.formats)
        if f.camera:
            spec["camera"] = f.camera
        if f.fields:
            spec["fields"] = [_field(c) for c in f.fields]
        body["filter"] = spec
    return parse_query(body, max_upload_bytes, dim, image=req.image if which == "image" else None)


def reply_from_result(result: SearchResult, keys: KeyCheck) -> pb.SearchReply:
    return pb.SearchReply(
        results=[pb.Hit(id=r.id, score=r.score, paths=r.paths, payload_json=orjson.dumps(r.payload).decode(),
                        thumbnail_url=keys.thumbnail_url(r.id)) for r in result.results],
        kind=result.kind, took_ms=result.took_ms, collection=result.collection, model_id=result.model_id)


def health_reply(health: dict[str, Any]) -> pb.HealthReply:
    return pb.HealthReply(status=health["status"], model_id=health["model_id"], collection=health["collection"],
                          points=int(health["points"]), indexed=bool(health["indexed"]), dim=int(health["dim"]))


def bearer(metadata: list[tuple[str, Any]]) -> str | None:
    for key, value in metadata:
        if key.lower() == "authorization":
            return value if isinstance(value, str) else value.decode()
    return None
