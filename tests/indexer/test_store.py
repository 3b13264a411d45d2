"""One contract for both vector stores: Edge in a temp folder, ServerStore over qdrant-client's local mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from photoseek.indexer.records import point_id
from photoseek.indexer.store import (
    CollectionInfo,
    EdgeStore,
    Filter,
    Match,
    MatchAny,
    Range,
    ServerStore,
    StoreError,
    VectorStore,
    open_store,
)

DIM = 16
INDEXES = {"kind": "keyword", "dirs": "keyword", "year": "integer", "aspect": "float", "fav": "bool"}


def ids(n: int, start: int = 0) -> list[str]:
    return [point_id(f"{i:064x}") for i in range(start, start + n)]


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def payloads(n: int) -> list[dict]:
    """Deterministic payloads exercising every filter kind."""
    return [
        {
            "kind": "abc"[i % 3],
            "dirs": ["root", f"d{i % 5}"] + (["deep"] if i % 7 == 0 else []),
            "year": 2000 + i % 20,
            "aspect": round(0.5 + (i % 10) / 10, 2),
            "fav": i % 4 == 0,
            "n": i,
        }
        for i in range(n)
    ]


def make_store(kind: str, root: Path, **kw) -> VectorStore:
    if kind == "edge":
        return EdgeStore(root / "store", **kw)
    return ServerStore(QdrantClient(location=":memory:"), **kw)


@pytest.fixture(params=["edge", "server"])
def store(request, tmp_path):
    s = make_store(request.param, tmp_path)
    yield s
    s.close()


@pytest.fixture
def filled(store):
    """A collection of 300 random unit vectors with `payloads(300)`; returns (store, ids, vectors)."""
    rng = np.random.default_rng(0)
    vecs = unit(rng.normal(size=(300, DIM)))
    store.ensure_collection("photos", DIM, "tiny@1", INDEXES)
    store.upsert("photos", ids(300), vecs, payloads(300))
    return store, ids(300), vecs


def brute_force(vecs: np.ndarray, q: np.ndarray, keep: np.ndarray, k: int) -> list[int]:
    scores = vecs @ unit(q)
    order = [i for i in np.argsort(-scores, kind="stable") if keep[i]]
    return order[:k]


# --- collections ----------------------------------------------------------------------------------
def test_ensure_collection_is_idempotent_and_checks_dim_and_model(store):
    store.ensure_collection("photos", DIM, "tiny@1", INDEXES)
    store.ensure_collection("photos", DIM, "tiny@1", INDEXES)
    assert store.has_collection("photos") and not store.has_collection("other")
    with pytest.raises(StoreError, match="dim"):
        store.ensure_collection("photos", DIM + 1, "tiny@1", INDEXES)
    with pytest.raises(StoreError, match="model"):
        store.ensure_collection("photos", DIM, "tiny@2", INDEXES)
    with pytest.raises(StoreError, match="kind"):
        store.ensure_collection("photos", DIM, "tiny@1", {"x": "geo"})
    assert store.collections() == [CollectionInfo("photos", DIM, 0, "tiny@1", [])]


def test_collections_info_and_delete(store):
    store.ensure_collection("b", 8, "m-b", {})
    store.ensure_collection("a", DIM, "m-a", {"kind": "keyword"})
    store.upsert("a", ids(3), unit(np.eye(3, DIM)), [{}] * 3)
    assert store.collections() == [CollectionInfo("a", DIM, 3, "m-a", []), CollectionInfo("b", 8, 0, "m-b", [])]
    store.delete_collection("a")
    assert [c.name for c in store.collections()] == ["b"]
    with pytest.raises(StoreError):
        store.count("a")


@pytest.mark.parametrize("bad", ["", "../up", "a/b", "a b", "x" * 65, ".hidden", "é", "ok\n"])
def test_invalid_names_are_rejected(store, bad):
    with pytest.raises(StoreError, match="invalid"):
        store.ensure_collection(bad, DIM, "m", {})
    store.ensure_collection("ok", DIM, "m", {})
    with pytest.raises(StoreError, match="invalid"):
        store.set_alias(bad, "ok")
    with pytest.raises(StoreError, match="invalid"):
        store.search(bad, np.ones(DIM))


# --- points ---------------------------------------------------------------------------------------
def test_upsert_retrieve_and_overwrite_same_id(filled):
    store, pids, vecs = filled
    assert store.count("photos") == 300
    got = store.retrieve("photos", [pids[5], ids(1, 999)[0], pids[2]], with_vectors=True)
    assert [r.id for r in got] == [pids[5], pids[2]]  # order asked, missing absent
    assert got[0].payload == payloads(300)[5]
    np.testing.assert_allclose(got[0].vector, vecs[5], atol=1e-6)
    assert store.retrieve("photos", [pids[5]])[0].vector is None

    new = unit(np.arange(1, DIM + 1, dtype=np.float32))[None]
    store.upsert("photos", [pids[5]], new * 3, [{"kind": "z"}])  # overwrite: payload replaced, vector too
    assert store.count("photos") == 300
    again = store.retrieve("photos", [pids[5]], with_vectors=True)[0]
    assert again.payload == {"kind": "z"}
    np.testing.assert_allclose(again.vector, new[0], atol=1e-6)  # cosine stores the normalised vector


def test_upsert_validates_shapes(store):
    store.ensure_collection("photos", DIM, "m", {})
    with pytest.raises(StoreError):
        store.upsert("photos", ids(2), np.ones((3, DIM)), [{}] * 2)
    with pytest.raises(StoreError):
        store.upsert("photos", ids(1), np.full((1, DIM), np.nan), [{}])
    with pytest.raises(StoreError):
        store.upsert("photos", ids(1), np.ones((1, DIM + 1)), [{}])
    with pytest.raises(StoreError):
        store.upsert("photos", ["not-a-uuid"], np.ones((1, DIM)), [{}])
    with pytest.raises(StoreError):
        store.search("photos", np.ones(DIM + 1))
    with pytest.raises(StoreError):
        store.search("missing", np.ones(DIM))


def test_set_payload_merges_and_delete(filled):
    store, pids, _ = filled
    store.set_payload("photos", pids[1], {"caption": "a cat", "kind": "q"})
    assert store.retrieve("photos", [pids[1]])[0].payload == {**payloads(300)[1], "caption": "a cat", "kind": "q"}
    with pytest.raises(StoreError):
        store.set_payload("photos", ids(1, 999)[0], {"x": 1})
    store.delete("photos", pids[:10] + ids(1, 999))
    assert store.count("photos") == 290
    assert store.retrieve("photos", pids[:12]) == store.retrieve("photos", pids[10:12])


# --- search ---------------------------------------------------------------------------------------
def test_search_order_scores_paging_and_threshold(store):
    store.ensure_collection("photos", 4, "m", {})
    vecs = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], np.float32)
    pids = ids(5)
    store.upsert("photos", pids, vecs, [{"n": i} for i in range(5)])
    q = np.array([1, 0, 0, 0], np.float32)
    hits = store.search("photos", q, limit=5)
    assert [h.id for h in hits] == pids  # cosines 1, .707, .577, .5, 0
    np.testing.assert_allclose([h.score for h in hits], unit(vecs) @ q, atol=1e-5)
    assert hits[2].payload == {"n": 2}
    page2 = store.search("photos", q, limit=2, offset=2)
    assert [h.id for h in page2] == pids[2:4]
    assert [h.id for h in store.search("photos", q, limit=5, score_threshold=0.55)] == pids[:3]
    assert store.search("photos", q, limit=0) == []


FILTERS = [
    (Filter([Match("kind", "b")]), lambda p: p["kind"] == "b"),
    (Filter([Match("fav", True)]), lambda p: p["fav"]),
    (Filter([MatchAny("dirs", ["d1", "deep"])]), lambda p: "d1" in p["dirs"] or "deep" in p["dirs"]),
    (Filter([Range("year", gte=2005, lt=2008)]), lambda p: 2005 <= p["year"] < 2008),
    (Filter([Range("aspect", gt=1.0, lte=1.3)]), lambda p: 1.0 < p["aspect"] <= 1.3),
    (Filter([Match("kind", "a"), Range("year", lte=2003)]), lambda p: p["kind"] == "a" and p["year"] <= 2003),
    (Filter([]), lambda p: True),
]


@pytest.mark.parametrize("flt,pred", FILTERS)
def test_each_filter_kind_counts_and_searches_exactly(filled, flt, pred):
    store, pids, vecs = filled
    keep = np.array([pred(p) for p in payloads(300)])
    assert store.count("photos", flt) == keep.sum()
    q = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    hits = store.search("photos", q, limit=10, filter=flt)
    assert [h.id for h in hits] == [pids[i] for i in brute_force(vecs, q, keep, 10)]


def test_filter_matching_nothing_returns_nothing(filled):
    store, _, _ = filled
    assert store.search("photos", np.ones(DIM), filter=Filter([Match("kind", "nope")])) == []


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_selective_filtered_search_has_full_recall(kind, tmp_path):
    # indexing_threshold_kb=1 makes Edge build a real HNSW graph even for 2,000 points.
    options = {"indexing_threshold_kb": 1} if kind == "edge" else {}
    with make_store(kind, tmp_path, **options) as store:
        rng = np.random.default_rng(7)
        n, dim = 2000, 32
        vecs = unit(rng.normal(size=(n, dim)))
        rare = rng.choice(n, size=n // 100, replace=False)
        tags = np.array(["common"] * n, dtype=object)
        tags[rare] = "rare"
        store.ensure_collection("photos", dim, "m", {"tag": "keyword"})
        store.upsert("photos", ids(n), vecs, [{"tag": t} for t in tags])
        store.flush()
        pids = ids(n)
        for q in rng.normal(size=(5, dim)).astype(np.float32):
            want = {pids[i] for i in brute_force(vecs, q, tags == "rare", 10)}
            got = {h.id for h in store.search("photos", q, limit=10, filter=Filter([Match("tag", "rare")]))}
            assert len(got & want) / 10 == 1.0


def test_search_goes_exact_only_for_small_filtered_sets(filled, monkeypatch):
    store, _, _ = filled
    seen: list[bool] = []
    inner = store._search
    monkeypatch.setattr(store, "_search", lambda *a: seen.append(a[-1]) or inner(*a))
    flt = Filter([Match("kind", "a")])  # 100 of 300 points
    store.search("photos", np.ones(DIM))
    store.search("photos", np.ones(DIM), filter=flt)
    store.exact_below = 50
    store.search("photos", np.ones(DIM), filter=flt)
    assert seen == [False, True, False]


def test_scroll_all_points_with_selected_fields(filled):
    store, pids, _ = filled
    got = list(store.scroll("photos", fields=["kind", "n"], batch=70))
    assert sorted(r.id for r in got) == sorted(pids)
    by_id = {r.id: r.payload for r in got}
    assert by_id[pids[4]] == {"kind": "b", "n": 4}
    assert all(r.vector is None for r in got)
    assert list(store.scroll("photos", fields=[]))[0].payload == {}
    assert len(list(store.scroll("photos"))[0].payload) == len(payloads(1)[0])


# --- aliases --------------------------------------------------------------------------------------
def test_aliases_resolve_route_and_repoint(filled):
    store, pids, vecs = filled
    store.ensure_collection("photos-v2", DIM, "tiny@2", {})
    store.upsert("photos-v2", ids(2, 500), vecs[:2], [{"v": 2}] * 2)

    store.set_alias("live", "photos")
    assert store.resolve("live") == "photos" and store.resolve("photos") == "photos"
    assert store.search("live", vecs[3], limit=1)[0].id == pids[3]
    assert store.count("live", Filter([Match("kind", "a")])) == 100
    store.ensure_collection("live", DIM, "tiny@1", INDEXES)  # through the alias: checks the target
    info = {c.name: c for c in store.collections()}
    assert info["photos"].aliases == ["live"] and info["photos-v2"].aliases == []

    store.set_alias("live", "photos-v2")
    assert store.resolve("live") == "photos-v2"
    assert store.search("live", vecs[0], limit=1)[0].payload == {"v": 2}
    with pytest.raises(StoreError):
        store.set_alias("photos", "photos-v2")  # would hide a collection
    with pytest.raises(StoreError):
        store.resolve("missing")
    store.delete_collection("photos-v2")
    assert not store.has_collection("live")


# --- Edge only ------------------------------------------------------------------------------------
def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_edge_second_open_fails_in_this_and_another_process(tmp_path):
    with EdgeStore(tmp_path / "store"):
        with pytest.raises(StoreError, match=f"pid {os.getpid()}"):
            EdgeStore(tmp_path / "store")
        proc = run_python(
            f"""
            from photoseek.indexer.store import EdgeStore, StoreError
            try:
                EdgeStore({str(tmp_path / 'store')!r})
            except StoreError as e:
                print("refused:", e)
            """,
            tmp_path,
        )
        assert f"refused: store {tmp_path / 'store'} is open in another process (pid {os.getpid()})" in proc.stdout
    EdgeStore(tmp_path / "store").close()  # released on close


def test_edge_recovers_points_after_kill_without_flush(tmp_path):
    proc = run_python(
        f"""
        import os
        import numpy as np
        from photoseek.indexer.records import point_id
        from photoseek.indexer.store import EdgeStore
        store = EdgeStore({str(tmp_path / 'store')!r})
        store.ensure_collection("photos", {DIM}, "m", {{"kind": "keyword"}})
        vecs = np.random.default_rng(3).normal(size=(500, {DIM})).astype(np.float32)
        store.upsert("photos", [point_id(f"{{i:064x}}") for i in range(500)], vecs, [{{"kind": "k"}}] * 500)
        print("written", flush=True)
        os.kill(os.getpid(), 9)
        """,
        tmp_path,
    )
    assert proc.returncode == -9 and "written" in proc.stdout, proc.stderr
    vecs = np.random.default_rng(3).normal(size=(500, DIM)).astype(np.float32)
    with EdgeStore(tmp_path / "store") as store:  # the dead writer's lock is gone with it
        assert store.count("photos") == 500
        assert store.count("photos", Filter([Match("kind", "k")])) == 500
        hit = store.search("photos", vecs[42], limit=1)[0]
        assert hit.id == ids(1, 42)[0] and hit.score == pytest.approx(1.0, abs=1e-5)


def test_edge_persists_across_close_and_reopen(tmp_path):
    vecs = unit(np.random.default_rng(5).normal(size=(50, DIM)))
    with open_store(str(tmp_path / "store")) as store:
        assert isinstance(store, EdgeStore)
        store.ensure_collection("photos", DIM, "tiny@1", INDEXES)
        store.upsert("photos", ids(50), vecs, payloads(50))
        store.set_alias("live", "photos")
    with open_store(str(tmp_path / "store")) as store:
        assert store.collections() == [CollectionInfo("photos", DIM, 50, "tiny@1", ["live"])]
        assert store.search("live", vecs[7], limit=1)[0].id == ids(50)[7]
        assert store.count("live", Filter([Range("year", gte=2010)])) == sum(p["year"] >= 2010 for p in payloads(50))
        assert store.optimize("live") in (True, False)


def test_edge_closed_store_refuses_work(tmp_path):
    store = EdgeStore(tmp_path / "store")
    store.ensure_collection("photos", DIM, "m", {})
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.count("photos")


# --- server only ----------------------------------------------------------------------------------
def test_server_falls_back_when_metadata_is_dropped(monkeypatch):
    client = QdrantClient(location=":memory:")
    real_create = client.create_collection

    def old_server_create(name, **kw):  # an older server ignores the metadata field
        kw.pop("metadata", None)
        return real_create(name, **kw)

    monkeypatch.setattr(client, "create_collection", old_server_create)
    store = ServerStore(client)
    store.ensure_collection("photos", DIM, "tiny@1", {})
    store.ensure_collection("photos", DIM, "tiny@1", {})
    with pytest.raises(StoreError, match="model"):
        store.ensure_collection("photos", DIM, "tiny@2", {})
    assert store.collections() == [CollectionInfo("photos", DIM, 0, "tiny@1", [])]
    with pytest.raises(StoreError, match="reserved"):
        store.ensure_collection("photoseek_meta", DIM, "m", {})
    store.delete_collection("photos")
    assert store.collections() == []
