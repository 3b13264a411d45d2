"""Prometheus metrics of one ingress replica: requests by route and status, latency histogram.

Each replica exports its own counters; Ray's metrics agent (port 8080 by default) aggregates Serve's built-in
metrics across replicas for a cluster-wide view.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("photoseek_requests", "HTTP requests answered", ["route", "method", "code"],
                                registry=self.registry)
        self.latency = Histogram("photoseek_request_seconds", "HTTP request latency inside the ingress",
                                 ["route"], buckets=_BUCKETS, registry=self.registry)
        self.grpc = Counter("photoseek_grpc_requests", "gRPC requests answered", ["method", "code"],
                            registry=self.registry)
        self.text_batch = Histogram("photoseek_text_batch_size", "texts per forward pass of the text encoder: "
                                    "alone (a lone query, no batch queue) or batched (@serve.batch)", ["path"],
                                    buckets=(1, 2, 4, 8, 16, 32), registry=self.registry)

    def observe(self, route: str, method: str, code: int, seconds: float) -> None:
        self.requests.labels(route, method, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
