"""`photoseek search`: ask a running service over HTTP or gRPC and print a table or JSON."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photoseek.indexer.store.remote import error_text

KEY_ENV = "PHOTOSEEK_API_KEY"


@dataclass
class SearchCall:
    query: str | None = None
    image: str | None = None  # a local file, sent as bytes
    id: str | None = None
    server: str = "http://127.0.0.1:8000"
    grpc: str | None = None  # host:port: use gRPC instead of HTTP
    limit: int = 10
    filter: dict[str, Any] | None = None
    api_key: str | None = None
    timeout: float = 30.0


class ClientError(RuntimeError):
    pass


def _body(call: SearchCall) -> dict[str, Any]:
    given = [x for x in (call.query, call.image, call.id) if x]
    if len(given) != 1:
        raise ValueError("give a text query, --image FILE or --id ID (exactly one)")
    body: dict[str, Any] = {"limit": call.limit}
    if call.filter:
        body["filter"] = call.filter
    if call.query:
        body["text"] = call.query
    elif call.id:
        body["id"] = call.id
    return body


def search_http(call: SearchCall) -> dict[str, Any]:
    import base64

    body = _body(call)
    if call.image:
        body["image"] = base64.b64encode(Path(call.image).read_bytes()).decode()
    headers = {"Content-Type": "application/json"}
    key = call.api_key or os.environ.get(KEY_ENV)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(call.server.rstrip("/") + "/v1/search", data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=call.timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise ClientError(f"HTTP {e.code}: {error_text(e)}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ClientError(f"no service at {call.server} ({e}); start one with `photoseek serve`") from None


def search_grpc(call: SearchCall) -> dict[str, Any]:
    import grpc

    from photoseek.serving.protos import photoseek_pb2 as pb
    from photoseek.serving.protos import photoseek_pb2_grpc as pb_grpc

    body = _body(call)
    request = pb.SearchRequest(limit=call.limit)
    if call.image:
        request.image = Path(call.image).read_bytes()
    elif "text" in body:
        request.text = body["text"]
    else:
        request.id = body["id"]
    f = call.filter or {}
    if f:
        request.filter.CopyFrom(pb.Filter(path_prefix=f.get("path_prefix", ""), taken_after=f.get("taken_after", ""),
                                          taken_before=f.get("taken_before", "")))
    metadata = [("application", "photoseek")]
    key = call.api_key or os.environ.get(KEY_ENV)
    if key:
        metadata.append(("authorization", f"Bearer {key}"))
    with grpc.insecure_channel(call.grpc) as channel:
        try:
            reply = pb_grpc.PhotoSeekStub(channel).Search(request, metadata=metadata, timeout=call.timeout)
        except grpc.RpcError as e:
            raise ClientError(f"gRPC {e.code().name}: {e.details()}") from None
    return {"results": [{"id": h.id, "score": h.score, "paths": list(h.paths), "payload": json.loads(h.payload_json),
                         "thumbnail_url": h.thumbnail_url} for h in reply.results],
            "kind": reply.kind, "took_ms": reply.took_ms, "collection": reply.collection, "model_id": reply.model_id}


def search(call: SearchCall) -> dict[str, Any]:
    return search_grpc(call) if call.grpc else search_http(call)


def format_table(reply: dict[str, Any]) -> str:
    rows = [f"{'#':>3}  {'score':>6}  {'id':36}  path"]
    for rank, r in enumerate(reply["results"], 1):
        path = r["paths"][0] if r["paths"] else "?"
        more = f"  (+{len(r['paths']) - 1} more)" if len(r["paths"]) > 1 else ""
        rows.append(f"{rank:>3}  {r['score']:6.3f}  {r['id']}  {path}{more}")
    if not reply["results"]:
        rows.append("  (no results)")
    rows.append(f"{len(reply['results'])} results from {reply['collection']} in {reply['took_ms']:.1f} ms")
    return "\n".join(rows)
