"""Text query latency over HTTP and gRPC, beside the framework's floor (bare Serve) and the database's (the store).

With --points photos' vectors in an embedded store, the real service (`photoseek serve`'s app) answers text
queries; a bare Serve app on the same proxies answers a constant; the store alone answers the same queries'
vectors in-process. Per target: p50/p99 of --requests sequential requests (the targets take turns, in --rounds
rounds, so that the machine's drift is shared), and requests/s with --clients concurrent clients (threads,
each its own keep-alive HTTP client or gRPC channel) for --seconds. The bare app runs its handlers on the
replica's own event loop, as the service's ingress does (SAME_LOOP_ENV). The text encoder's own cost (one
query, in-process, 1 thread, on the text path the replicas pick: Encoder.fast_text) is shown beside.

    python bench/query_latency.py [--points 100000] [--model /work/runs-final/clip-resnet] [--workdir DIR] [--json]
    python bench/query_latency.py --points 2000 --requests 50 --seconds 2          # smoke test

Target: HTTP p50 and gRPC p50 each within 1.5x of (bare Serve p50 of that protocol + store query p50).
The bare app answers in three ways, because they cost Serve differently: a POST that never reads its body,
a POST that reads it (Serve's replica fetches a request body from the proxy in a second round trip: about
2 ms here), and a GET; the service is measured by POST (JSON body), by GET (/v1/search?text=...) and by gRPC.
Vectors are store_latency.py's seeded clustered draws at the model's dimension; payloads mimic the indexer's
(files, paths, dirs, sha256, size, dates, camera). The store is built once per --workdir and reused while its
point count, model and seed match (without --workdir: a temporary folder, deleted after).

A text query pays, beyond both floors, the text encoder (its row is informational). With `--topology split`
it also pays two calls between deployments (Ingress -> TextEncoder, Ingress -> SearcherDeployment); the
default `fused` topology (what `photoseek serve` runs with the embedded store) makes none.
Only one process may open the store: it is built and measured here first, closed, then served.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

import numpy as np
from _machine import cores  # bench/ is on sys.path when a script here runs
from ray import serve
from store_latency import CENTRES, clustered

from photoseek.serving.app import SAME_LOOP_ENV  # the bare app runs its handlers as the service's ingress does

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster needs no token
os.environ.pop("PHOTOSEEK_API_KEYS", None)  # keys off: the service binds 127.0.0.1

CAPTIONS = [  # varied texts, so that the TextEncoder's batches never hold identical inputs only
    "a large red circle on the left", "a small blue square at the top",
    "two green triangles against a white background", "a yellow star in the middle",
    "an orange diamond near the bottom right corner", "three pink crosses on a black backdrop",
    "a purple disc in the upper left corner", "a little navy block at the bottom",
    "a big grey ball on the right side", "a beige rhombus in the centre",
    "a dark blue plus sign above a white square", "a light green circle below a red triangle",
    "a medium sized orange star on the left", "two black diamonds in the lower right corner",
    "a pale yellow square against a navy background", "a single red cross in the middle",
    "three small blue circles near the top", "a large pink triangle on a grey backdrop",
    "an image showing a green star and a purple block", "a picture of two white balls on the right",
]
LIMIT, WARMUP, UPSERT, SEED = 10, 50, 1000, 0
MARKER = "bench-query-latency.json"
# makes one client: (send(text), close); send returns a check of the reply to run after the clock stopped
# (parsing 6 KB of JSON is the client's work, not the service's), or None
Client = Callable[[], tuple[Callable[[str], Callable[[], None] | None], Callable[[], None]]]


def payload(i: int, rng: np.random.Generator, model_id: str) -> dict[str, Any]:
    """An indexer-like payload for photo i (see sink.QdrantWriter._payload and _derive)."""
    from photoseek.indexer.sink import ancestors

    year, album = 2010 + i % 16, int(rng.integers(0, 400))
    path = f"/photos/{year}/album-{album:03d}/IMG_{i:07d}.jpg"
    size, ts = int(rng.integers(1_500_000, 8_000_000)), int(rng.integers(1_262_304_000, 1_767_225_600))
    mtime_ns = (ts + 86_400) * 1_000_000_000
    out = {"files": [{"path": path, "rel": path[len("/photos/"):], "size": size, "mtime_ns": mtime_ns}],
           "sha256": hashlib.sha256(i.to_bytes(8, "little")).hexdigest(), "width": 4032, "height": 3024,
           "format": "JPEG", "bytes": size, "model_id": model_id, "meta": {},
           "taken_at": datetime.fromtimestamp(ts, timezone.utc).isoformat(), "taken_ts": ts,
           "paths": [path], "dirs": ancestors(path), "mtime": mtime_ns // 1_000_000_000}
    if i % 3:
        out["camera"] = "Canon EOS R5" if i % 3 == 1 else "Apple iPhone 13"
    return out


def open_or_build(root: Path, n: int, dim: int, model_id: str, collection: str) -> Any:
    """The open store under root/store: reused when its marker and point count match, else built afresh."""
    from photoseek.indexer.pipeline import DEFAULT_ALIAS
    from photoseek.indexer.records import point_id
    from photoseek.indexer.sink import PAYLOAD_INDEXES
    from photoseek.indexer.store.edge import EdgeStore

    path, spec = root / "store", {"points": n, "dim": dim, "model_id": model_id, "seed": SEED}
    marker = path / MARKER
    if marker.exists() and json.loads(marker.read_text()) == spec:
        store = EdgeStore(path)
        if store.has_collection(collection) and store.count(collection) == n:
            print(f"store: reusing {path} ({n:,} points)")
            return store
        store.close()
    elif path.exists() and not marker.exists():
        raise SystemExit(f"{path} exists and is not this benchmark's store: choose another --workdir")
    shutil.rmtree(path, ignore_errors=True)
    print(f"store: building {n:,} points in {path} ...", flush=True)
    store = EdgeStore(path)
    store.ensure_collection(collection, dim, model_id, PAYLOAD_INDEXES)
    store.set_alias(DEFAULT_ALIAS, collection)
    rng = np.random.default_rng(SEED)
    centres = rng.normal(size=(CENTRES, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = clustered(n, centres, rng)
    t0 = time.perf_counter()
    for s in range(0, n, UPSERT):
        rows = range(s, min(s + UPSERT, n))
        payloads = [payload(i, rng, model_id) for i in rows]
        store.upsert(collection, [point_id(p["sha256"]) for p in payloads], x[s:s + len(rows)], payloads)
    t1 = time.perf_counter()
    store.flush()  # index=True: builds HNSW
    print(f"store: built {path}: {n:,} points upserted in {t1 - t0:.1f} s, indexed and flushed in "
          f"{time.perf_counter() - t1:.1f} s")
    marker.write_text(json.dumps(spec))
    return store


def sequential(makes: dict[str, Client], requests: int, rounds: int) -> dict[str, list[float]]:
    """Latencies (ms) of `requests` sequential calls per target, after WARMUP each. The targets take turns in
    `rounds` rounds, so that a slow spell of the machine (a shared VM drifts by a millisecond over a minute)
    falls on every target alike instead of on whichever was measured then."""
    clients = {name: make() for name, make in makes.items()}
    lat: dict[str, list[float]] = {name: [] for name in makes}
    try:
        for name, (send, _) in clients.items():
            for k in range(WARMUP):
                send(CAPTIONS[k % len(CAPTIONS)])
        per = max(1, requests // rounds)
        for r in range(rounds):
            for name, (send, _) in clients.items():
                for k in range(r * per, (r + 1) * per):
                    t0 = time.perf_counter()
                    check = send(CAPTIONS[k % len(CAPTIONS)])
                    lat[name].append((time.perf_counter() - t0) * 1000)
                    if check:
                        check()
    finally:
        for _, close in clients.values():
            close()
    return lat


def concurrent(make: Client, seconds: float, clients: int) -> dict[str, float]:
    """Calls/s with `clients` threads (each its own client) for `seconds`, and the p50 under that load."""
    done, errors = [0] * clients, [0] * clients
    conc: list[list[float]] = [[] for _ in range(clients)]
    clock = [0.0, 0.0]  # start, stop: set once every client is connected

    def go() -> None:
        clock[0] = time.perf_counter()
        clock[1] = clock[0] + seconds

    start = threading.Barrier(clients, action=go)

    def client(c: int) -> None:
        send, close = make()
        try:
            try:
                send(CAPTIONS[c % len(CAPTIONS)])  # connect before the clock starts
            finally:
                start.wait()
            k = c
            while (t0 := time.perf_counter()) < clock[1]:
                k += 1
                try:
                    check = send(CAPTIONS[k % len(CAPTIONS)])
                    took = (time.perf_counter() - t0) * 1000
                    if check:
                        check()
                    done[c] += 1
                    conc[c].append(took)
                except Exception:
                    errors[c] += 1
        finally:
            close()

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - clock[0]
    flat = [v for c in conc for v in c]
    return {"rps": sum(done) / elapsed, "conc_p50": float(np.percentile(flat, 50)) if flat else float("nan"),
            "errors": sum(errors)}


def summary(lat: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))}


def http_client(url: str, check: bool, get: bool = False) -> Client:
    import httpx

    def make():
        client = httpx.Client(timeout=30)

        def send(text: str) -> Callable[[], None] | None:
            if get:
                r = client.get(url, params={"text": text, "limit": str(LIMIT)})
            else:
                r = client.post(url, json={"text": text, "limit": LIMIT})
            r.raise_for_status()

            def verify() -> None:
                if len(r.json()["results"]) != LIMIT:
                    raise RuntimeError(f"{url}: expected {LIMIT} results, got {r.text[:300]}")
            return verify if check else None
        return send, client.close
    return make


def grpc_client(target: str, app: str, check: bool) -> Client:
    import grpc

    from photoseek.serving.protos import photoseek_pb2 as pb
    from photoseek.serving.protos import photoseek_pb2_grpc as pbg

    def make():
        channel = grpc.insecure_channel(target)
        stub = pbg.PhotoSeekStub(channel)

        def send(text: str) -> Callable[[], None] | None:
            reply = stub.Search(pb.SearchRequest(text=text, limit=LIMIT), metadata=[("application", app)], timeout=30)

            def verify() -> None:
                if len(reply.results) != LIMIT:
                    raise RuntimeError(f"gRPC {app}: expected {LIMIT} results, got {reply}")
            return verify if check else None
        return send, channel.close
    return make


@serve.deployment(ray_actor_options={"num_cpus": 0.25, "runtime_env": {"env_vars": SAME_LOOP_ENV}})
@serve.ingress()
class Bare:
    """The framework's own cost: Serve's proxies, a FastAPI app and a gRPC method answering constants."""

    def __serve_build_asgi_app__(self):
        from fastapi import FastAPI

        from fastapi import Request

        app = FastAPI()

        @app.post("/v1/search")
        async def search():
            return {"results": [], "kind": "text"}

        async def search_body(request):  # receiving a POST body is Serve's cost too (see the docstring)
            await request.body()
            return {"results": [], "kind": "text"}

        search_body.__annotations__["request"] = Request  # a real class: this module's annotations are strings
        app.post("/v1/search-body")(search_body)

        @app.get("/v1/search")
        async def search_get():
            return {"results": [], "kind": "text"}
        return app

    async def Search(self, request: Any, grpc_context: Any = None) -> Any:
        from photoseek.serving.protos import photoseek_pb2 as pb

        return pb.SearchReply(kind="text")


def in_process(fn: Callable[[str], Any]) -> Client:
    """A "client" that calls fn in this process."""
    def send(text: str) -> None:
        fn(text)
    return lambda: (send, lambda: None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    import torch

    libs = ", ".join(f"{p} {version(p)}" for p in ("ray", "qdrant-edge-py", "grpcio", "httpx", "fastapi"))
    return f"{cores()}; torch {torch.__version__}; {libs}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--model", default="/work/runs-final/clip-resnet", help="a trained model directory")
    ap.add_argument("--requests", type=int, default=600, help="sequential requests per target (p50/p99)")
    ap.add_argument("--rounds", type=int, default=8, help="the sequential requests come in this many turns")
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each concurrent run")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients (threads)")
    ap.add_argument("--workdir", default=None, help="keep the store here and reuse it (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="also print one JSON line with every figure")
    ap.add_argument("--topology", choices=["fused", "split"], default="fused",
                    help="the service's deployment graph (default fused, as `photoseek serve --store` runs)")
    args = ap.parse_args()

    import ray
    import torch

    from photoseek.encoders.checkpoint import read_meta
    from photoseek.encoders.encoder import Encoder
    from photoseek.indexer.pipeline import DEFAULT_ALIAS, collection_name
    from photoseek.ray_setup import RAY_ENV
    from photoseek.serving.service import ServeRequest, start, stop

    meta = read_meta(Path(args.model))
    dim, model_id = int(meta["embed_dim"]), meta["model_id"]
    collection = collection_name(DEFAULT_ALIAS, model_id)
    print(f"machine: {machine()}")
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-query-"))
    root.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, float]] = {}

    def run(targets: dict[str, Client]) -> None:
        """Sequential latencies with the targets taking turns, then each target's concurrent run."""
        lat = sequential(targets, args.requests, args.rounds)
        per = max(1, args.requests // args.rounds)
        for name, make in targets.items():
            rounds = [float(np.percentile(lat[name][i:i + per], 50)) for i in range(0, len(lat[name]), per)]
            rows[name] = r = {**summary(lat[name]), "round_p50": rounds, **concurrent(make, args.seconds, args.clients)}
            print(f"  {name}: p50 {r['p50']:.2f} ms, {r['rps']:.1f} req/s", flush=True)

    try:
        store = open_or_build(root, args.points, dim, model_id, collection)
        try:
            info = store._shard(collection)[1].info()  # a bench may peek: whether HNSW covers the points
            print(f"store: {info.points_count:,} points, {info.indexed_vectors_count:,} in HNSW, "
                  f"{info.segments_count} segments; model {model_id}, {dim}-d")
            torch.set_num_threads(1)  # as the TextEncoder replica
            encoder = Encoder.load(args.model, "cpu")
            encoder.fast_text()  # as the replicas do
            print(f"text path: {encoder.text_runtime}")
            vectors = dict(zip(CAPTIONS, encoder.encode_texts(CAPTIONS)))
            run({"text encode": in_process(lambda t: encoder.encode_texts([t])),
                 "store query": in_process(lambda t: store.search(collection, vectors[t], LIMIT))})
            del encoder
        finally:
            store.close()  # the service's SearcherDeployment opens it next

        # As init_ray(), but always a fresh local Ray (never a cluster someone else started), and the replicas'
        # per-request log lines stay in their files instead of being printed by this process among its clients.
        env = {k: os.environ.setdefault(k, v) for k, v in RAY_ENV.items()}
        ray.init(address="local", runtime_env={"env_vars": env}, configure_logging=True, logging_level="WARNING",
                 log_to_driver=False)
        running = None
        try:
            req = ServeRequest(model=args.model, store=str(root / "store"), port=free_port(), grpc_port=free_port(),
                               topology=args.topology)
            t0 = time.perf_counter()
            running = start(req)
            serve.run(Bare.options(max_ongoing_requests=req.max_ongoing_requests,
                                   max_queued_requests=req.max_queued_requests).bind(),
                      name="bare", route_prefix="/bare")
            print(f"serve: photoseek + bare apps up in {time.perf_counter() - t0:.1f} s at {running.http_url} "
                  f"(gRPC {running.grpc_target})")
            url, target = running.http_url, running.grpc_target
            run({"bare Serve HTTP": http_client(f"{url}/bare/v1/search", False),
                 "bare HTTP + body": http_client(f"{url}/bare/v1/search-body", False),
                 "bare HTTP GET": http_client(f"{url}/bare/v1/search", False, get=True),
                 "bare Serve gRPC": grpc_client(target, "bare", False),
                 "text query HTTP": http_client(f"{url}/v1/search", True),
                 "text query GET": http_client(f"{url}/v1/search", True, get=True),
                 "text query gRPC": grpc_client(target, "photoseek", True)})
        finally:
            try:
                stop(running)
            finally:
                ray.shutdown()
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)

    print(f"\n{args.points:,} points, {args.topology} topology, limit {LIMIT}; p50/p99 over {args.requests} "
          f"sequential requests (targets taking turns, {args.rounds} rounds), req/s with "
          f"{args.clients} clients for {args.seconds:g} s each")
    print(f"{'target':18s} {'p50 ms':>7s} {'p99 ms':>7s} {'req/s':>8s} {'conc p50':>8s}  notes")
    notes = {"text query HTTP": "POST /v1/search (JSON body)", "text query GET": "GET /v1/search?text=...",
             "text query gRPC": "PhotoSeek.Search",
             "bare Serve HTTP": "FastAPI POST, constant JSON, body never read",
             "bare HTTP + body": "the same, reading the POST body first",
             "bare HTTP GET": "FastAPI GET, constant JSON", "bare Serve gRPC": "constant SearchReply",
             "store query": "EdgeStore.search, in-process, precomputed vector",
             "text encode": "Encoder.encode_texts, 1 text, in-process, fast_text(), 1 thread (info)"}
    for name in notes:
        r = rows[name]
        err = f"; {r['errors']} errors" if r["errors"] else ""
        print(f"{name:18s} {r['p50']:7.2f} {r['p99']:7.2f} {r['rps']:8.1f} {r['conc_p50']:8.2f}  {notes[name]}{err}")
    print("(conc p50: latency under the concurrent load; in-process rows' clients are threads in this process)\n")
    verdicts = {}
    store_p50, enc_p50 = rows["store query"]["p50"], rows["text encode"]["p50"]
    checks = [("HTTP", "text query HTTP", "bare Serve HTTP"), ("HTTP*", "text query HTTP", "bare HTTP + body"),
              ("GET", "text query GET", "bare HTTP GET"), ("gRPC", "text query gRPC", "bare Serve gRPC")]
    for label, query, base in checks:
        got, bare = rows[query]["p50"], rows[base]["p50"]
        floor = bare + store_p50
        verdicts[label] = got <= 1.5 * floor
        # the same ratio within each round (the targets' p50 over that round's requests): how much it drifts
        per_round = [q / (b + store_p50) for q, b in zip(rows[query]["round_p50"], rows[base]["round_p50"])]
        print(f"{'PASS' if verdicts[label] else 'FAIL'}  {query} p50 {got:.2f} ms <= 1.5 x ({base} {bare:.2f} + store "
              f"{store_p50:.2f} = {floor:.2f} ms) = {1.5 * floor:.2f} ms: {got / floor:.2f}x "
              f"(rounds {min(per_round):.2f}-{max(per_round):.2f}x; with encode {enc_p50:.2f} ms: "
              f"{got / (floor + enc_p50):.2f}x)")
    print("HTTP* takes as the floor a bare endpoint that also receives the POST body: Serve makes the replica "
          "fetch a body from the proxy in a second round trip, the framework's cost for any POST.")
    if args.json:
        print(json.dumps({"machine": machine(), "points": args.points, "requests": args.requests,
                          "seconds": args.seconds, "clients": args.clients, "rows": rows,
                          "pass": verdicts}))


if __name__ == "__main__":
    main()
