"""The Ray Serve application: thin deployments around the plain classes, composed with `.bind()`.

Split topology (the default with a Qdrant server; scales each part on its own, encoders on GPUs):

    Ingress (HTTP via FastAPI, gRPC via Serve's gRPC proxy)
      |-- TextEncoder   batches concurrent text queries into one forward pass (@serve.batch)
      |-- ImageEncoder  decodes an uploaded photo with the indexer's decode stage and embeds it
      `-- SearcherDeployment  owns the store (embedded Edge: exactly one replica) and answers store calls

Fused topology (the default with the embedded store, which has one owner anyway): the Ingress holds the
same three parts in its own process, batching overlapping text queries with @serve.batch (a lone query
skips the batch queue). A query then makes no call between deployments; each such call costs about 5 ms on
a 2-core machine, more than the search itself.

`build_app(args)` is the application builder: `photoseek serve` calls it, and a Serve config file can name
`photoseek.serving.app:build_app` with the same args (see deploy/).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from ray import serve

from photoseek.indexer.decode import DecodeLimits
from photoseek.indexer.pipeline import DEFAULT_ALIAS
from photoseek.serving.auth import KEYS_ENV, digest, load_keys
from photoseek.serving.query import NotFound, QueryError, SearchQuery, TooLarge

APP_NAME = "photoseek"

# Serve runs a replica's handlers on a second event loop in its own thread by default, so that blocking user
# code cannot stall the replica's control loop. Every request then crosses between the two loops; measured
# here that costs the ingress about 1 ms a query (bench/query_latency.py). Our handlers never block for long
# (a text embed plus an HNSW query is ~2 ms; image decoding, thumbnails and store writes go to threads), so
# the ingress runs them on the replica's own loop. Set per deployment, so it holds on any cluster.
SAME_LOOP_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
# A text query that arrives within this long of the previous search's end finds the replica busy (queries
# queued behind each other) and goes through the batch queue; a client's own round trip takes longer.
BUSY_GAP_S = 0.001


@dataclass(frozen=True)
class Refusal:
    """A caller's mistake, returned across a handle instead of raised (so replicas do not log tracebacks)."""

    kind: str  # "query" | "not_found" | "too_large"
    message: str

    def raise_(self) -> None:
        raise {"query": QueryError, "not_found": NotFound, "too_large": TooLarge}[self.kind](self.message)


def refusing(fn: Any) -> Any:
    """Run fn; a QueryError / NotFound / TooLarge becomes a Refusal value."""
    try:
        return fn()
    except TooLarge as e:
        return Refusal("too_large", str(e))
    except QueryError as e:
        return Refusal("query", str(e))
    except NotFound as e:
        return Refusal("not_found", str(e))


def accepted(value: Any) -> Any:
    """The value from a handle call, or the Refusal it carried raised here as its exception."""
    if isinstance(value, Refusal):
        value.raise_()
    return value


@dataclass
class AppArgs:
    """Everything the deployments need; plain values so that a Serve config file can give them too."""

    model: str
    store: str | None = None
    qdrant_url: str | None = None
    collection: str = DEFAULT_ALIAS
    key_digests: list[str] = field(default_factory=list)
    link_secret: str | None = None
    admin_digest: str | None = None
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = DecodeLimits.max_pixels
    max_decode_seconds: float = 5.0
    photo_roots: list[str] | None = None
    max_ongoing_requests: int = 32  # per ingress replica
    max_queued_requests: int = 64  # beyond this, callers get 503 / RESOURCE_EXHAUSTED at once
    request_timeout_s: float | None = 30.0  # the Serve proxies' (set there); requests may only shorten it
    ingress_replicas: int = 1
    text_replicas: int = 1
    gpu: bool = False
    topology: str | None = None  # "fused" | "split"; default: fused for an embedded store, split for a server

    @property
    def fused(self) -> bool:
        topology = self.topology or ("split" if self.qdrant_url else "fused")
        if topology not in ("fused", "split"):
            raise ValueError(f"topology must be fused or split, not {topology!r}")
        return topology == "fused"

    @property
    def limits(self) -> DecodeLimits:
        return DecodeLimits(self.max_pixels, self.max_upload_bytes, self.max_decode_seconds)


def _query_encoder(model: str, gpu: bool, text: bool = True) -> Any:
    """The model as every replica that embeds queries loads it: one torch thread (many small batches: more
    threads cost more than they save), on a GPU when asked; for text, the fastest text path that matches
    eager (ONNX Runtime or a TorchScript trace: a third to a half of eager's time a query)."""
    import torch

    from photoseek.encoders.encoder import Encoder

    torch.set_num_threads(1)
    encoder = Encoder.load(model, "cuda" if gpu else "cpu")
    if text:
        encoder.fast_text()
    return encoder


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class TextEncoder:
    def __init__(self, model: str, gpu: bool = False) -> None:
        from photoseek.serving.searcher import TextEmbedder

        self.embed = TextEmbedder(_query_encoder(model, gpu))

    # No waiting for a batch to fill: a lone query goes at once, and queries that arrive while one batch runs
    # form the next (under load batches grow by themselves; a timeout would only add latency at low load).
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def __call__(self, texts: list[str]) -> list[np.ndarray]:
        vectors = await asyncio.to_thread(self.embed, texts)  # (B, D); the loop keeps collecting the next batch
        return list(vectors)


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class ImageEncoder:
    def __init__(self, model: str, limits: dict[str, Any], gpu: bool = False) -> None:
        from photoseek.serving.searcher import ImageEmbedder

        self.embed = ImageEmbedder(_query_encoder(model, gpu, text=False), DecodeLimits(**limits))

    def __call__(self, data: bytes) -> Any:
        return refusing(lambda: self.embed([data])[0])


class StoreOwner:
    """The store and the Searcher over it, answering with values or Refusals (what crosses a handle)."""

    def __init__(self, args: dict[str, Any], encoder: Any = None) -> None:
        """With an encoder (fused graph) the Searcher embeds texts and images itself."""
        from pathlib import Path

        from photoseek.encoders.checkpoint import read_meta
        from photoseek.indexer.store import open_store
        from photoseek.serving.searcher import Searcher

        a = AppArgs(**args)
        self.store = open_store(a.store, a.qdrant_url)
        if encoder is not None:
            self.searcher = Searcher.from_encoder(self.store, encoder, a.collection, limits=a.limits,
                                                  photo_roots=a.photo_roots)
        else:
            meta = read_meta(Path(a.model))
            self.searcher = Searcher(self.store, meta["model_id"], meta["embed_dim"], a.collection,
                                     limits=a.limits, photo_roots=a.photo_roots)

    def search(self, query: SearchQuery) -> Any:
        return refusing(lambda: self.searcher.search(query))

    def photo(self, id: str) -> Any:
        return refusing(lambda: self.searcher.photo(id))

    def thumbnail(self, id: str, side: int) -> Any:
        return refusing(lambda: self.searcher.thumbnail(id, side))

    def health(self) -> dict[str, Any]:
        return self.searcher.health()

    def store_call(self, op: str, args: dict[str, Any]) -> Any:
        from photoseek.indexer.store import StoreError
        from photoseek.serving.store_ops import run_store_op

        try:
            return refusing(lambda: run_store_op(self.store, op, args))
        except StoreError as e:
            return Refusal("query", str(e))
        finally:
            self.searcher.changed()

    def close(self) -> None:
        self.store.close()


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
class SearcherDeployment(StoreOwner):
    """The store's one owner in the split topology (for Edge: exactly one replica)."""

    def __del__(self) -> None:
        if getattr(self, "store", None) is not None:
            self.close()


class Frontend:
    """The ingress's logic, a plain class (tests drive it on plain asyncio): HTTP (FastAPI app built per
    replica) and gRPC (methods named after the .proto's rpcs) in one place; `Ingress` deploys it.

    Split topology: handles to the encoder and searcher deployments. Fused (`searcher` None): the same
    parts live in this replica, overlapping text queries batched by @serve.batch, and a query makes no hop
    between deployments (each costs about 5 ms on a 2-core machine).
    """

    def __init__(self, searcher: Any, text: Any, image: Any, args: dict[str, Any]) -> None:
        from pathlib import Path

        from photoseek.encoders.checkpoint import read_meta
        from photoseek.serving.auth import KeyCheck
        from photoseek.serving.metrics import Metrics

        self.args = AppArgs(**args)
        self.searcher, self.text, self.image = searcher, text, image
        self.dim = int(read_meta(Path(self.args.model))["embed_dim"])
        self.keys = KeyCheck(self.args.key_digests, self.args.link_secret)
        self.metrics = Metrics()  # one registry for the HTTP app and the gRPC methods: /metrics shows both
        self.local: StoreOwner | None = None
        self._texts_waiting = 0  # text queries between arrival and their vector (fused graph)
        self._search_ended = 0.0  # perf_counter() when the last search ended
        if searcher is None:
            self.local = StoreOwner(args, _query_encoder(self.args.model, self.args.gpu))

    async def _text_vector(self, text: str) -> np.ndarray:
        """The vector of a text query (fused graph): alone at once, or in one @serve.batch pass with others.

        A query is alone when no other one waits for its vector and the previous search ended more than
        BUSY_GAP_S ago: then nothing is queued behind it, and the batch queue (its tasks, futures and metrics:
        about 1 ms a query on a 2-core machine) would only make a batch of one. Otherwise the replica is
        busy: the query yields once, so that the queries queued behind it reach this point too, and they share
        one forward pass (8 texts take 1.2 ms on a CPU where one takes 0.6 ms).
        """
        if self._texts_waiting == 0 and time.perf_counter() - self._search_ended > BUSY_GAP_S:
            self.metrics.text_batch.labels("alone").observe(1)
            return self.local.searcher.embed_text([text])[0]
        self._texts_waiting += 1
        try:
            await asyncio.sleep(0)
            return await self._texts(text)
        finally:
            self._texts_waiting -= 1

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _texts(self, texts: list[str]) -> list[np.ndarray]:
        # On the event loop: a batch takes about a millisecond on a CPU, less than handing it to a thread
        # costs on a busy machine; queries arriving meanwhile wait in the queue and form the next batch.
        self.metrics.text_batch.labels("batched").observe(len(texts))
        return list(self.local.searcher.embed_text(texts))

    def __del__(self) -> None:
        if getattr(self, "local", None) is not None:
            self.local.close()

    def __serve_build_asgi_app__(self):
        from photoseek.serving.http_api import HttpSettings, build_http_app

        a = self.args
        return build_http_app(self, HttpSettings(a.max_upload_bytes, tuple(a.key_digests), a.link_secret,
                                                 a.admin_digest, a.request_timeout_s), self.metrics)

    # --- the backend the HTTP app and the gRPC methods share -------------------------------------
    async def search(self, query: SearchQuery) -> Any:
        """Embed the text or image (timed: `encode_ms`), then search; `server_ms` is the whole call."""
        started = time.perf_counter()
        local = self.local
        if query.text is not None:
            vector = await (self._text_vector(query.text) if local else self.text.remote(query.text))
            query = query.with_vector(vector)
        elif query.image is not None:
            if local:  # decode + embed in a thread; the Searcher says when the model has no image tower
                vector = await asyncio.to_thread(refusing, lambda: local.searcher.vector_of(query))
            else:
                vector = await self.image.remote(query.image)
            query = query.with_vector(accepted(vector))
        encoded = time.perf_counter()
        try:
            result = await self._search(query)
        finally:
            self._search_ended = time.perf_counter()
        result.extra["encode_ms"] = round((encoded - started) * 1000, 3)
        result.extra["server_ms"] = round((time.perf_counter() - started) * 1000, 3)
        return result

    async def _search(self, query: SearchQuery) -> Any:
        local = self.local
        if local:  # an HNSW query is about a millisecond: cheaper inline than through a thread
            return accepted(local.search(query))
        return accepted(await self.searcher.search.remote(query))

    async def _owner(self, method: str, *args: Any) -> Any:
        """Call the store owner, in this replica (fused) or through its handle (split)."""
        if self.local is not None:
            return accepted(await asyncio.to_thread(getattr(self.local, method), *args))
        return accepted(await getattr(self.searcher, method).remote(*args))

    async def photo(self, id: str) -> Any:
        return await self._owner("photo", id)

    async def thumbnail(self, id: str, side: int) -> bytes:
        return await self._owner("thumbnail", id, side)

    async def health(self) -> dict[str, Any]:
        return await self._owner("health")

    async def store_call(self, op: str, args: dict[str, Any]) -> Any:
        return await self._owner("store_call", op, args)

    # --- gRPC ----------------------------------------------------------------------------------------
    async def Search(self, request: Any, grpc_context: Any) -> Any:
        from photoseek.serving.grpc_api import query_from_proto, reply_from_result
        from photoseek.serving.protos import photoseek_pb2 as pb

        async def run():
            query = query_from_proto(request, self.args.max_upload_bytes, self.dim)
            return reply_from_result(await self.search(query), self.keys)

        return await self._grpc("Search", grpc_context, run, pb.SearchReply())

    async def Health(self, request: Any, grpc_context: Any) -> Any:
        from photoseek.serving.grpc_api import health_reply
        from photoseek.serving.protos import photoseek_pb2 as pb

        async def run():
            return health_reply(await self.health())

        return await self._grpc("Health", grpc_context, run, pb.HealthReply())

    async def _grpc(self, method: str, context: Any, run: Any, empty: Any) -> Any:
        import grpc

        from photoseek.serving.auth import AuthError, peer_is_loopback
        from photoseek.serving.grpc_api import bearer
        from photoseek.serving.http_api import is_backpressure

        code, message = grpc.StatusCode.OK, ""
        try:
            if not self.keys.enabled and not peer_is_loopback(context.peer()):
                # Serve's gRPC proxy listens on every interface whatever --host says; without keys we
                # answer this machine only, as the HTTP side (bound to 127.0.0.1) does.
                code, message = grpc.StatusCode.PERMISSION_DENIED, \
                    "API keys are off: this service answers gRPC from its own machine only; set keys to serve others"
            else:
                self.keys.check_header(bearer(context.invocation_metadata()))
                return await run()
        except AuthError as e:
            code, message = grpc.StatusCode.UNAUTHENTICATED, str(e)
        except TooLarge as e:
            code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, str(e)
        except QueryError as e:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(e)
        except NotFound as e:
            code, message = grpc.StatusCode.NOT_FOUND, str(e)
        except Exception as e:
            if is_backpressure(e):
                code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded: retry shortly"
            else:
                code, message = grpc.StatusCode.INTERNAL, f"internal error ({type(e).__name__})"
        finally:
            self.metrics.grpc.labels(method, code.name).inc()
        context.set_code(code)
        context.set_details(message)
        return empty


@serve.deployment(ray_actor_options={"num_cpus": 0.25})
@serve.ingress()
class Ingress(Frontend):
    """The Frontend as Serve's ingress deployment: HTTP through its FastAPI app, gRPC through its methods."""


def build_app(args: dict[str, Any]) -> Any:
    """The application builder (also for Serve config files: `import_path: photoseek.serving.app:build_app`)."""
    a = AppArgs(**args)
    if not a.key_digests and os.environ.get(KEYS_ENV):  # a Serve config file leaves keys to the environment
        a.key_digests = [digest(k) for k in load_keys()]
    if a.link_secret is None:  # one secret for every replica, or a link signed by one fails on another
        a.link_secret = secrets.token_hex(32)
    plain = asdict(a)
    gpu = {"num_gpus": 0.5} if a.gpu else {}
    quiet = {"logging_config": {"enable_access_log": False}}  # inner calls: the ingress logs each request once
    ingress = Ingress.options(
        num_replicas=1 if a.fused and a.qdrant_url is None else a.ingress_replicas,  # fused + Edge: the owner
        max_ongoing_requests=a.max_ongoing_requests,
        max_queued_requests=a.max_queued_requests,
        ray_actor_options={"num_cpus": 0.5 if a.fused else 0.25, **(gpu if a.fused else {}),
                           "runtime_env": {"env_vars": SAME_LOOP_ENV}},
    )
    if a.fused:
        return ingress.bind(None, None, None, plain)
    searcher = SearcherDeployment.options(  # an embedded store has exactly one owner; a server scales out
        num_replicas=1 if a.qdrant_url is None else max(1, a.ingress_replicas),
        max_ongoing_requests=64, **quiet,
    ).bind(plain)
    text = TextEncoder.options(
        num_replicas=a.text_replicas, max_ongoing_requests=64,  # two full batches waiting
        ray_actor_options={"num_cpus": 0.25, **gpu}, **quiet,
    ).bind(a.model, a.gpu)
    image = ImageEncoder.options(ray_actor_options={"num_cpus": 0.25, **gpu}, max_ongoing_requests=8, **quiet).bind(
        a.model, {"max_pixels": a.max_pixels, "max_bytes": a.max_upload_bytes, "max_seconds": a.max_decode_seconds},
        a.gpu)
    return ingress.bind(searcher, text, image, plain)
