"""Embedded store (EdgeStore) write rate, query latency and recall, plain and filtered, at 100k and 1M vectors.

Per size: upsert rate, optimize and flush time, query p50/p99 and recall@10, filtered queries (1 % and 5 % of
the points) with recall@10 against numpy brute force, and the time to reopen the store.

    python bench/store_latency.py [--sizes 100000,1000000] [--dim 256] [--queries 200] [--workdir DIR]
    python bench/store_latency.py --sizes 2000          # smoke test

Vectors are a seeded mixture of 1,000 gaussian clusters, normalised; queries are fresh draws from the same
clusters. Payloads mimic the indexer's: `dirs` (one folder holds 1 % of the points, one 5 %, 940 others ~0.1 %
each), an integer `taken_ts` and a keyword `format`. Filtered recall@10 is checked against the project's target
(>= 0.95) as PASS/FAIL; the table says whether the store searched the matches exactly (fewer than its
`exact_below`) or asked Qdrant's HNSW with the payload index, and adds a 1 % row forced through HNSW.
Filtered latencies include the exact count the store makes first to choose that path.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from importlib.metadata import version

import numpy as np
from _machine import cores  # bench/ is on sys.path when a script here runs

from photoseek.indexer.store import Filter, MatchAny
from photoseek.indexer.store.edge import EdgeStore

NAME = "bench"
INDEXES = {"dirs": "keyword", "taken_ts": "integer", "format": "keyword"}
CENTRES = 1000
SPREAD = 0.7  # norm of a point's offset from its cluster centre, before normalising (centres are unit)
CHUNK = 100_000  # rows per generation / brute-force chunk: bounds the temporary memory
UPSERT = 1000
ONE, FIVE = "/photos/one-percent", "/photos/five-percent"
FORMATS = ("JPEG", "PNG", "HEIF")


def clustered(n: int, centres: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors drawn around random centres, float32 (n, D), made chunk by chunk."""
    dim = centres.shape[1]
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, CHUNK):
        m = min(CHUNK, n - s)
        v = centres[rng.integers(0, len(centres), m)] + rng.normal(0, SPREAD / dim ** 0.5, (m, dim)).astype(np.float32)
        out[s:s + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def folders(n: int, rng: np.random.Generator) -> np.ndarray:
    """A folder number per point: 0 holds ~1 %, 1 ~5 %, 2..941 the rest evenly (~0.1 % each)."""
    u = rng.random(n)
    return np.where(u < 0.01, 0, np.where(u < 0.06, 1, 2 + rng.integers(0, 940, n)))


def folder_path(k: int) -> str:
    return ONE if k == 0 else FIVE if k == 1 else f"/photos/f{k:03d}"


def point_ids(start: int, stop: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(start, stop)]  # row i <-> UUID int i + 1


def fill(store: EdgeStore, x: np.ndarray, group: np.ndarray, rng: np.random.Generator) -> float:
    """Upsert every row in calls of UPSERT points; returns seconds."""
    ts = rng.integers(1_262_304_000, 1_767_225_600, len(x))  # 2010 .. 2026
    fmt = rng.choice(len(FORMATS), len(x), p=[0.9, 0.07, 0.03])
    t0 = time.perf_counter()
    for s in range(0, len(x), UPSERT):
        e = min(s + UPSERT, len(x))
        payloads = [{"dirs": ["/photos", folder_path(int(group[i]))], "taken_ts": int(ts[i]),
                     "format": FORMATS[fmt[i]]} for i in range(s, e)]
        store.upsert(NAME, point_ids(s, e), x[s:e], payloads)
    return time.perf_counter() - t0


def exact_top(x: np.ndarray, q: np.ndarray, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """Row numbers of the k best cosine matches per query (brute force in chunks); (Q, k)."""
    rows = np.arange(len(x)) if rows is None else rows
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.zeros((len(q), 0), np.int64)
    for s in range(0, len(rows), CHUNK):
        r = rows[s:s + CHUNK]
        scores = q @ x[r].T  # (Q, chunk)
        top = np.argpartition(-scores, min(k, len(r) - 1), axis=1)[:, :k]
        best_s = np.concatenate([best_s, np.take_along_axis(scores, top, 1)], axis=1)
        best_i = np.concatenate([best_i, r[top]], axis=1)
        keep = np.argsort(-best_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(best_s, keep, 1), np.take_along_axis(best_i, keep, 1)
    return best_i


def run_queries(store: EdgeStore, q: np.ndarray, flt: Filter | None, k: int = 10) -> tuple[np.ndarray, list]:
    """Latencies in ms and the row numbers found, one search per query."""
    lat, found = [], []
    for v in q:
        t0 = time.perf_counter()
        hits = store.search(NAME, v, limit=k, filter=flt)
        lat.append((time.perf_counter() - t0) * 1000)
        found.append([uuid.UUID(h.id).int - 1 for h in hits])
    return np.array(lat), found


def recall(found: list, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth.tolist())]))


def bench_size(n: int, dim: int, queries: int, workdir: str | None, seed: int = 0) -> dict[str, float]:
    """Build a store of n points, print its table; returns filtered recall per row label."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CENTRES, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x, group = clustered(n, centres, rng), folders(n, rng)
    q = clustered(queries + 10, centres, np.random.default_rng(seed + 1))
    warm, q = q[:10], q[10:]
    path = tempfile.mkdtemp(prefix="bench-store-", dir=workdir)
    try:
        store = EdgeStore(path)
        store.ensure_collection(NAME, dim, "bench", INDEXES)
        upsert_s = fill(store, x, group, rng)
        t0 = time.perf_counter()
        store.optimize(NAME)
        optimize_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.flush()
        flush_s = time.perf_counter() - t0
        info = store._shard(NAME)[1].info()  # a bench may peek: whether HNSW covers the points
        print(f"\n== {n:,} vectors, {dim}-d, {CENTRES} clusters ==")
        print(f"upsert {n:,} points in {upsert_s:.1f} s: {n / upsert_s:,.0f} points/s (calls of {UPSERT}); "
              f"optimize {optimize_s:.2f} s; flush {flush_s:.2f} s; {info.indexed_vectors_count:,} vectors "
              f"in HNSW, {info.segments_count} segments")
        for v in warm:
            store.search(NAME, v, limit=10)
        print(f"{'query':22s} {'matches':>9s} {'path':>6s} {'p50 ms':>7s} {'p99 ms':>7s} {'recall@10':>9s}")
        filtered: dict[str, float] = {}
        below = store.exact_below  # (label, folder, exact_below): 0 sends even a selective filter to HNSW
        cases = [("unfiltered", None, below), ("dirs 1 %", 0, below), ("dirs 1 % forced HNSW", 0, 0),
                 ("dirs 5 %", 1, below)]
        for label, folder, exact_below in cases:
            flt = None if folder is None else Filter([MatchAny("dirs", [folder_path(folder)])])
            rows = None if folder is None else np.flatnonzero(group == folder)
            matches = n if rows is None else len(rows)
            store.exact_below = exact_below
            lat, found = run_queries(store, q, flt)
            r = recall(found, exact_top(x, q, 10, rows))
            exact = flt is not None and store.count(NAME, flt) < exact_below
            way = "exact" if exact else "HNSW" if info.indexed_vectors_count >= n else "scan"
            print(f"{label:22s} {matches:9,d} {way:>6s} {np.percentile(lat, 50):7.2f} {np.percentile(lat, 99):7.2f} "
                  f"{r:9.3f}")
            if folder is not None and exact_below:
                filtered[label] = r
        store.exact_below = below
        print("(exact: the store's brute force over the matches, below its exact_below; HNSW: an approximate "
              "request, which Qdrant may still answer from the payload index when few points match)")
        t0 = time.perf_counter()
        store.close()
        t1 = time.perf_counter()
        store = EdgeStore(path)
        t2 = time.perf_counter()
        store.search(NAME, q[0], limit=10)
        t3 = time.perf_counter()
        print(f"reopen: close {t1 - t0:.2f} s, open {t2 - t1:.2f} s, first query {t3 - t2:.2f} s "
              f"(total {t3 - t0:.2f} s)")
        store.close()
        return filtered
    finally:
        shutil.rmtree(path, ignore_errors=True)


def machine() -> str:
    return f"{cores()}; numpy {np.__version__}; qdrant-edge-py {version('qdrant-edge-py')}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="comma-separated point counts")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--workdir", default=None, help="where the temporary stores go (default: the system temp)")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    verdicts = []
    for n in (int(s) for s in args.sizes.split(",")):
        for label, r in bench_size(n, args.dim, args.queries, args.workdir).items():
            verdicts.append((r >= 0.95, f"{n:,}: {label} recall@10 {r:.3f} >= 0.95"))
    print()
    for ok, text in verdicts:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


if __name__ == "__main__":
    main()
