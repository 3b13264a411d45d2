"""The fused ingress's text path: a lone query skips the batch queue; overlapping queries share @serve.batch
passes; either way a text gets the vector the Searcher gives it alone. The ingress's plain class runs here
on asyncio, without Serve."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from photoseek.serving.query import parse_query

from servetools import index_tree

TEXTS = [f"a small {c} {s} on the {p}" for c in ("red", "blue") for s in ("circle", "square")
         for p in ("left", "right")]


@pytest.fixture(scope="module")
def ingress(tiny_model_dir, photo_tree, tmp_path_factory):
    from photoseek.serving.app import Frontend

    store = tmp_path_factory.mktemp("batching-store")
    index_tree(tiny_model_dir, photo_tree, store)
    app = Frontend(None, None, None, {"model": str(tiny_model_dir), "store": str(store)})
    yield app
    app.local.close()


def paths(ingress) -> dict[str, int]:
    """Forward passes so far, by path (from the /metrics histogram's counts)."""
    counts = {}
    for metric in ingress.metrics.registry.collect():
        for sample in metric.samples:
            if sample.name == "photoseek_text_batch_size_count":
                counts[sample.labels["path"]] = int(sample.value)
    return counts


def query(text: str):
    return parse_query({"text": text, "limit": 3}, 1 << 20, None)


def test_lone_queries_skip_the_batch_queue(ingress):
    async def one_by_one():
        out = []
        for text in TEXTS[:3]:
            await asyncio.sleep(0.01)  # a client's round trip: the replica is idle when the next one comes
            out.append(await ingress.search(query(text)))
        return out

    before = paths(ingress)
    results = asyncio.run(one_by_one())
    after = paths(ingress)
    assert after.get("alone", 0) - before.get("alone", 0) == 3
    assert after.get("batched", 0) == before.get("batched", 0)
    assert all(len(r.results) == 3 for r in results)


def test_overlapping_queries_share_batches_and_get_the_same_vectors(ingress, monkeypatch):
    from types import SimpleNamespace

    from ray import serve

    # @serve.batch reads its replica's max_ongoing_requests when its queue starts: give it one, as a replica would
    replica = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=32))
    monkeypatch.setattr(serve, "get_replica_context", lambda: replica)
    searcher = ingress.local.searcher
    alone = {t: searcher.embed_text([t])[0] for t in TEXTS}
    seen: dict[str, np.ndarray] = {}

    async def together():
        async def one(text):
            seen[text] = await ingress._text_vector(text)
        await asyncio.sleep(0.01)
        ingress._search_ended = time.perf_counter()  # as if a search just ended: queries are queued behind it
        await asyncio.gather(*(one(t) for t in TEXTS))

    before = paths(ingress)
    asyncio.run(together())
    after = paths(ingress)
    batches = after.get("batched", 0) - before.get("batched", 0)
    assert 1 <= batches < len(TEXTS)  # at least two texts went through one forward pass
    assert after.get("alone", 0) == before.get("alone", 0)
    for text in TEXTS:
        np.testing.assert_allclose(seen[text], alone[text], atol=1e-5)
