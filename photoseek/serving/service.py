"""`photoseek serve`: start (or join) Ray, start Serve's HTTP and gRPC proxies, run the app, wait.

Nothing listens beyond 127.0.0.1 unless --host says so, and a non-loopback host requires API keys.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photoseek.indexer.decode import DecodeLimits
from photoseek.indexer.pipeline import DEFAULT_ALIAS
from photoseek.indexer.store import DEFAULT_STORE_DIR
from photoseek.indexer.store.remote import SERVICE_FILE
from photoseek.serving.app import APP_NAME, AppArgs, build_app
from photoseek.serving.auth import digest, is_loopback, load_keys

GRPC_OVERHEAD = 64 * 1024


@dataclass
class ServeRequest:
    """`photoseek serve` settings (YAML section `serve`, flags override)."""

    model: str
    store: str | None = None
    qdrant_url: str | None = None
    collection: str = DEFAULT_ALIAS
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_port: int = 9000
    api_keys_file: str | None = None  # else $PHOTOSEEK_API_KEYS; required when host is not loopback
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = DecodeLimits.max_pixels
    request_timeout_s: float = 30.0
    max_ongoing_requests: int = 32
    max_queued_requests: int = 64
    ingress_replicas: int = 1
    text_replicas: int = 1
    photo_roots: list[str] = field(default_factory=list)
    gpu: bool = False
    topology: str | None = None  # fused | split (default: fused with the embedded store, split with a server)
    ray_address: str | None = None


@dataclass
class Running:
    http_url: str
    grpc_target: str
    store_dir: str | None
    auth: bool

    def describe(self) -> str:
        return (f"photoseek is serving\n  web page + HTTP API  {self.http_url}/  (OpenAPI docs {self.http_url}/docs)\n"
                f"  gRPC                 {self.grpc_target}  (service photoseek.v1.PhotoSeek, application "
                f"'{APP_NAME}')\n  API keys             {'required' if self.auth else 'off (localhost only)'}")


def app_args(req: ServeRequest, admin_token: str) -> AppArgs:
    keys = load_keys(req.api_keys_file)
    if not keys and not is_loopback(req.host):
        raise ValueError(f"--host {req.host} listens beyond this machine: set API keys first "
                         f"($PHOTOSEEK_API_KEYS or --api-keys-file)")
    if not Path(req.model).is_dir():
        raise FileNotFoundError(f"model directory {req.model} does not exist")
    store = None if req.qdrant_url else str(Path(req.store or DEFAULT_STORE_DIR).resolve())
    return AppArgs(model=str(Path(req.model).resolve()), store=store, qdrant_url=req.qdrant_url,
                   collection=req.collection, key_digests=[digest(k) for k in keys],
                   link_secret=secrets.token_hex(32), admin_digest=digest(admin_token),
                   max_upload_bytes=req.max_upload_bytes, max_pixels=req.max_pixels,
                   photo_roots=[str(Path(r).resolve()) for r in req.photo_roots] or None,
                   max_ongoing_requests=req.max_ongoing_requests, max_queued_requests=req.max_queued_requests,
                   request_timeout_s=req.request_timeout_s,
                   ingress_replicas=req.ingress_replicas, text_replicas=req.text_replicas, gpu=req.gpu,
                   topology=req.topology)


def start(req: ServeRequest) -> Running:
    """Start Serve and the app; returns once it answers. The caller stops it with `stop()`."""
    from ray import serve
    from ray.serve.config import HTTPOptions, gRPCOptions

    from photoseek.ray_setup import init_ray
    from photoseek.serving.protos import SERVICER, generate

    admin_token = secrets.token_urlsafe(32)
    args = app_args(req, admin_token)
    generate()  # the gRPC proxy imports the generated servicer module
    # gRPC refuses bigger messages itself (RESOURCE_EXHAUSTED) before they reach a replica
    os.environ.setdefault("RAY_SERVE_GRPC_MAX_MESSAGE_SIZE", str(req.max_upload_bytes + GRPC_OVERHEAD))
    init_ray(req.ray_address)
    serve.start(
        http_options=HTTPOptions(host=req.host, port=req.port, request_timeout_s=req.request_timeout_s),
        grpc_options=gRPCOptions(port=req.grpc_port, grpc_servicer_functions=[SERVICER],
                                 request_timeout_s=req.request_timeout_s),
    )
    serve.run(build_app(vars(args)), name=APP_NAME, route_prefix="/")
    host = "127.0.0.1" if req.host in ("0.0.0.0", "::") else req.host
    running = Running(f"http://{host}:{req.port}", f"{host}:{req.grpc_port}", args.store, bool(args.key_digests))
    if args.store:
        write_service_file(Path(args.store), running.http_url, admin_token)
    return running


def write_service_file(store: Path, url: str, admin_token: str) -> None:
    """Tell `photoseek index` on this folder where to write while we hold it (owner-only permissions)."""
    path = store / SERVICE_FILE
    tmp = path.with_name(f".{SERVICE_FILE}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": url, "admin_token": admin_token, "pid": os.getpid()}, f)
    os.replace(tmp, path)


def stop(running: Running | None = None) -> None:
    from ray import serve

    if running and running.store_dir:
        (Path(running.store_dir) / SERVICE_FILE).unlink(missing_ok=True)
    serve.shutdown()


def serve_forever(req: ServeRequest, on_ready: Any = print) -> int:
    running = start(req)
    on_ready(running.describe())
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        done.wait()
    finally:
        print("photoseek serve: stopping", flush=True)
        stop(running)
    return 0
