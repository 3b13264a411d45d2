"""The HTTP API as a FastAPI app over any backend with async search/photo/thumbnail/health methods.

The Serve ingress builds it with itself as the backend; nothing here knows about Ray. Limits are enforced in
this order: body size (413, from Content-Length or while the body streams in, before any parsing), API key
(401), request shape (400), then the backend (404 for an unknown id, 503 when Serve sheds load).

Serve's HTTP proxy lets a request set its own timeout (`x-request-timeout-seconds`; 0 or less turns it off)
and stop the proxy from cancelling it when its client goes (`x-request-disconnect-disabled`). Both would let
any caller hold a replica past the service's request timeout, so the app refuses such requests at once
(400): a timeout header may only shorten the service's own.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from photoseek.serving.auth import AuthError, KeyCheck
from photoseek.serving.metrics import Metrics
from photoseek.serving.query import QueryError, SearchQuery, TooLarge, check_id, parse_query
from photoseek.serving.searcher import Result, SearchResult

STATIC = Path(__file__).parent / "static"
OPEN_PATHS = ("/", "/healthz", "/docs", "/openapi.json", "/favicon.ico")
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and small fields beside the file
ADMIN_HEADER = "x-photoseek-admin"
TIMEOUT_HEADER = b"x-request-timeout-seconds"  # read by Serve's proxy before the app sees the request
NO_DISCONNECT_HEADER = b"x-request-disconnect-disabled"


class Backend(Protocol):
    dim: int

    async def search(self, query: SearchQuery) -> SearchResult: ...
    async def photo(self, id: str) -> Result: ...
    async def thumbnail(self, id: str, side: int) -> bytes: ...
    async def health(self) -> dict[str, Any]: ...
    async def store_call(self, op: str, args: dict[str, Any]) -> Any: ...


@dataclass
class HttpSettings:
    max_upload_bytes: int = 10 * 1024 * 1024
    key_digests: tuple[str, ...] = ()  # SHA-256 of the API keys; empty: keys off (loopback only)
    link_secret: str | None = None  # signs thumbnail links; shared by all replicas
    admin_digest: str | None = None  # SHA-256 of the token that lets `photoseek index` write through us
    request_timeout_s: float | None = 30.0  # the proxy's; a request's own timeout header may only be shorter

    @property
    def max_body_bytes(self) -> int:
        return self.max_upload_bytes * 4 // 3 + FORM_OVERHEAD  # base64 in JSON is 4/3 of the file


class FilterBody(BaseModel):
    path_prefix: str | None = Field(None, description="folder: photos anywhere below it", examples=["/photos/2024"])
    taken_after: str | int | None = Field(None, description="ISO date/datetime or epoch seconds (inclusive)")
    taken_before: str | int | None = Field(None, description="ISO date/datetime or epoch seconds (exclusive)")
    format: str | list[str] | None = Field(None, examples=["JPEG"])
    camera: str | None = None
    fields: list[dict[str, Any]] | None = Field(
        None, description='any payload field: {"key": k, "match": v} | {"key": k, "any": [...]} | '
                          '{"key": k, "gte": x, "lt": y}')


class SearchBody(BaseModel):
    """Exactly one of text, image, id, vector. Multipart form uploads take the same fields, `image` as a file."""

    text: str | None = Field(None, examples=["two dogs playing in the snow"])
    image: str | None = Field(None, description="base64 (or data: URL) of a JPEG/PNG/WebP/... file")
    id: str | None = Field(None, description="an indexed photo's id: more like this")
    vector: list[float] | None = None
    limit: int = Field(10, ge=1, le=100)
    offset: int = Field(0, ge=0, le=10000)
    score_threshold: float | None = None
    filter: FilterBody | None = None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# GET /v1/search's parameters. The handler reads them itself: FastAPI's per-parameter validation of ten
# optional strings cost more than the rest of the request's handling (parse_query checks every value anyway).
GET_PARAMS = {"text": "search by text", "id": "more like this indexed photo", "limit": "1-100 (default 10)",
              "offset": "results to skip", "score_threshold": "lowest score returned",
              "path_prefix": "only photos below this folder", "taken_after": "ISO date or epoch s (inclusive)",
              "taken_before": "ISO date or epoch s (exclusive)", "format": "JPEG, PNG, ...", "camera": "camera model"}
_GET_FILTER = ("path_prefix", "taken_after", "taken_before", "format", "camera")


def get_body(params: Any) -> dict[str, Any]:
    """GET /v1/search's query parameters as POST's JSON body; an unknown or repeated parameter is an error."""
    unknown = sorted(set(params) - set(GET_PARAMS))
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r}; GET /v1/search takes {', '.join(GET_PARAMS)}")
    repeated = [k for k in GET_PARAMS if len(params.getlist(k)) > 1]
    if repeated:
        raise QueryError(f"parameter {repeated[0]!r} given more than once")
    body = {k: params[k] for k in GET_PARAMS if k in params and k not in _GET_FILTER}
    spec = {k: params[k] for k in _GET_FILTER if params.get(k)}
    if spec:
        body["filter"] = spec
    return body


def result_json(r: Result, keys: KeyCheck) -> dict[str, Any]:
    return {"id": r.id, "score": r.score, "paths": r.paths, "payload": r.payload,
            "thumbnail_url": keys.thumbnail_url(r.id)}


def is_backpressure(exc: BaseException) -> bool:
    """Serve refused the call for load (matched by name: this module does not import Ray)."""
    return type(exc).__name__ in ("BackPressureError", "DeploymentUnavailableError")


def build_http_app(backend: Backend, settings: HttpSettings, metrics: Metrics | None = None) -> FastAPI:
    """The FastAPI app over `backend`; `metrics` (default: a new registry) is what /metrics exports."""
    keys = KeyCheck(list(settings.key_digests), settings.link_secret)
    metrics = metrics or Metrics()
    app = FastAPI(title="photoseek", version="1", description="Private image search: text, image, id or vector "
                  "queries over one model's photo collection. Send 'Authorization: Bearer <key>' when keys are on.")

    @app.exception_handler(QueryError)
    async def bad_request(request: Request, exc: QueryError):
        return _error(400, str(exc))

    @app.exception_handler(TooLarge)
    async def too_large(request: Request, exc: TooLarge):
        return _error(413, str(exc))

    @app.exception_handler(LookupError)
    async def not_found(request: Request, exc: LookupError):
        return _error(404, str(exc).strip("'\""))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        if is_backpressure(exc):
            return _error(503, "overloaded: too many requests queued; retry shortly", {"Retry-After": "1"})
        return _error(500, f"internal error ({type(exc).__name__}); see the service log")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(status_code=204)

    @app.get("/healthz", tags=["service"])
    async def healthz():
        health = await backend.health()
        return {**health, "auth": keys.enabled}

    @app.get("/metrics", tags=["service"], response_class=Response)
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.post("/v1/search", tags=["search"], openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": SearchBody.model_json_schema(ref_template="#/components/schemas/{model}")},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "image": {"type": "string", "format": "binary"}, "text": {"type": "string"},
            "id": {"type": "string"}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
            "score_threshold": {"type": "number"}, "filter": {"type": "string", "description": "JSON object"}}}},
    }, "required": True}})
    async def search(request: Request):
        """Search by text, image (base64 or upload), id (more like this) or vector, with filters and paging."""
        return await _answer(await _read_query(request, settings, backend.dim))

    @app.get("/v1/search", tags=["search"], openapi_extra={"parameters": [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in GET_PARAMS.items()]})
    async def search_get(request: Request):
        """Text or id search with its settings in the URL (links, browsers, caches). No request body to
        stream in, which Serve makes the replica fetch from the proxy: about 2 ms less than POST here."""
        return await _answer(parse_query(get_body(request.query_params), settings.max_upload_bytes, backend.dim))

    async def _answer(query: SearchQuery) -> Response:
        result = await backend.search(query)
        # Server-Timing: where the time went inside the service (browsers' devtools show it)
        timing = ", ".join(f"{name};dur={result.extra[key]}" for name, key in
                           (("encode", "encode_ms"), ("total", "server_ms")) if key in result.extra)
        timing = f"search;dur={result.took_ms}" + (f", {timing}" if timing else "")
        # orjson: a page of results with payloads (~7 KB) in 5 us where json.dumps takes 50
        return Response(orjson.dumps({"results": [result_json(r, keys) for r in result.results], "kind": result.kind,
                                      "limit": query.limit, "offset": query.offset, "took_ms": result.took_ms,
                                      "collection": result.collection, "model_id": result.model_id}),
                        media_type="application/json", headers={"Server-Timing": timing})

    @app.get("/v1/photos/{photo_id}", tags=["photos"])
    async def photo(photo_id: str):
        """An indexed photo's paths and payload."""
        r = await backend.photo(check_id(photo_id))
        out = result_json(r, keys)
        out.pop("score")
        return out

    @app.get("/v1/photos/{photo_id}/thumbnail", tags=["photos"], response_class=Response)
    async def thumbnail(photo_id: str, size: int = 256):
        """A JPEG thumbnail (128, 256 or 512 px), read from the file the index holds for this id."""
        data = await backend.thumbnail(check_id(photo_id), size)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/v1/admin/store", include_in_schema=False)
    async def admin_store(request: Request):
        """Store operations for `photoseek index` writing through the service that owns an embedded store."""
        if not settings.admin_digest or not _token_matches(request.headers.get(ADMIN_HEADER),
                                                            settings.admin_digest):
            return _error(401, "admin token required")
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("op"), str):
            raise QueryError("admin body must be {op, args}")
        return {"result": await backend.store_call(body["op"], body.get("args") or {})}

    app.add_middleware(Guard, keys=keys, metrics=metrics, limit=settings.max_body_bytes,
                       upload_limit=settings.max_upload_bytes, timeout_s=settings.request_timeout_s)
    return app


def _route_name(path: str) -> str:
    """Metrics label without ids in it (one series per route, not per photo)."""
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[:2] == ["v1", "photos"]:
        return "/v1/photos/{id}" + ("/thumbnail" if len(parts) > 3 else "")
    if path in ("/v1/search", "/metrics", "/v1/admin/store"):
        return path
    return "other"


def _token_matches(token: str | None, digest_hex: str) -> bool:
    import hashlib
    import hmac

    return bool(token) and hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), digest_hex)


def _thumbnail_link_ok(path: str, query_string: bytes, keys: KeyCheck) -> bool:
    from urllib.parse import parse_qs

    parts = path.strip("/").split("/")
    if len(parts) != 4 or parts[:2] != ["v1", "photos"] or parts[3] != "thumbnail":
        return False
    q = {k: v[-1] for k, v in parse_qs(query_string.decode("latin-1")).items()}
    try:
        side, expires = int(q.get("size", "256")), int(q.get("expires", ""))
    except ValueError:
        return False
    return keys.check_link(parts[2], side, expires, q.get("sig"))


class Guard:
    """Plain ASGI middleware in front of every route (cheaper than Starlette's BaseHTTPMiddleware), in order:
    the body limit (413 before the app parses anything), Serve's per-request timeout headers (400 unless they
    only shorten the timeout), the API key (401), then the app; every answer is counted in the metrics by
    route and status.

    A declared Content-Length is checked at once; a chunked body is read (at most `limit` bytes are held) and
    replayed to the app only when it ended under the limit.
    """

    def __init__(self, app: Any, keys: KeyCheck, metrics: Metrics, limit: int, upload_limit: int,
                 timeout_s: float | None = None) -> None:
        self.app, self.keys, self.metrics = app, keys, metrics
        self.limit, self.upload_limit, self.timeout_s = limit, upload_limit, timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def counted_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, counted_send)
        finally:
            path = scope["path"]
            route = path if path in OPEN_PATHS else _route_name(path)
            self.metrics.observe(route, scope["method"], status[0], time.perf_counter() - start)

    async def _handle(self, scope: dict, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.limit):
                return await self._too_large(scope, receive, send)
            if length is None:
                receive = await self._buffered(receive)
                if receive is None:
                    return await self._too_large(scope, receive, send)
        refusal = self._timeout_refusal(headers)
        if refusal:
            return await _error(400, refusal)(scope, receive, send)
        path = scope["path"]
        if self.keys.enabled and path not in OPEN_PATHS and not path.startswith("/v1/admin/") \
                and not _thumbnail_link_ok(path, scope.get("query_string", b""), self.keys):
            try:
                self.keys.check_header(headers.get(b"authorization", b"").decode("latin-1") or None)
            except AuthError as e:
                return await _error(401, str(e), {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        await self.app(scope, receive, send)

    def _timeout_refusal(self, headers: dict[bytes, bytes]) -> str | None:
        """Why Serve's per-request timeout headers may not stand (see the module docstring), or None."""
        if NO_DISCONNECT_HEADER in headers:
            return f"{NO_DISCONNECT_HEADER.decode()} is not accepted: requests whose client has gone are cancelled"
        value = headers.get(TIMEOUT_HEADER)
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            seconds = float("nan")
        if not (seconds > 0 and (self.timeout_s is None or seconds <= self.timeout_s)):
            limit = f"(0, {self.timeout_s:g}]" if self.timeout_s is not None else "above 0"
            return f"{TIMEOUT_HEADER.decode()} must be a number of seconds in {limit}: it may only shorten " \
                   f"this service's request timeout, not lift it"
        return None

    async def _buffered(self, receive: Any) -> Any:
        """Read a body without Content-Length up to the limit; a replaying receive, or None when over it."""
        messages, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return None
            messages.append(message)
            if not message.get("more_body"):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        return replay

    async def _too_large(self, scope: dict, receive: Any, send: Any) -> None:
        response = _error(413, f"request body over {self.limit} bytes (image uploads up to {self.upload_limit} "
                               f"bytes)", {"Connection": "close"})
        await response(scope, receive, send)


async def _read_query(request: Request, settings: HttpSettings, dim: int) -> SearchQuery:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=16, max_part_size=settings.max_upload_bytes + 1)
        except Exception as e:
            if "size" in str(e).lower() or "too large" in str(e).lower():
                raise TooLarge(f"upload over {settings.max_upload_bytes} bytes") from None
            raise QueryError(f"malformed multipart form: {e}") from None
        fields: dict[str, Any] = {}
        image = None
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                if key != "image":
                    raise QueryError(f"unexpected file field {key!r}; upload the photo as 'image'")
                image = await value.read(settings.max_upload_bytes + 1)
            elif key == "filter":
                try:
                    fields["filter"] = json.loads(value) if value else None
                except json.JSONDecodeError as e:
                    raise QueryError(f"filter is not valid JSON: {e}") from None
            elif value != "":
                fields[key] = value
        return parse_query(fields, settings.max_upload_bytes, dim, image=image)
    if ctype not in ("application/json", ""):
        raise QueryError(f"send application/json or multipart/form-data, not {ctype}")
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QueryError(f"body is not valid JSON: {e}") from None
    return parse_query(body, settings.max_upload_bytes, dim)


def settings_dict(settings: HttpSettings) -> dict[str, Any]:
    return asdict(settings)
