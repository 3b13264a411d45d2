"""`photoseek demo`: the main job end to end on the embedded defaults, small enough for a laptop.

Makes a synthetic captioned dataset, trains the default model under a time budget, evaluates it, indexes
the dataset's photos into the embedded Qdrant store, starts the search service (Ray Serve: web page, HTTP,
gRPC) and answers a text query through it, then keeps serving until Ctrl-C (when run from a terminal).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from photoseek.encoders.data.synth import SynthConfig, write_synthetic
from photoseek.encoders.eval_run import EvalRequest, evaluate
from photoseek.encoders.evaluate import format_metrics
from photoseek.encoders.train.trainer import TrainRequest, train
from photoseek.indexer.pipeline import IndexRequest, index

DEMO_QUERY = "a large red circle on the left"


def run_demo(out: Path, images: int = 3000, max_minutes: float = 3.0, port: int = 8000, grpc_port: int = 9000,
             wait: bool | None = None) -> int:
    """`wait` None: keep serving until Ctrl-C when stdin is a terminal, else stop after the query."""
    out = out.resolve()
    data, model, store = out / "data", out / "model", out / "photoseek-data"
    print(f"[1/6] synthetic dataset: {images} captioned scenes in {data}", flush=True)
    print(json.dumps(write_synthetic(data, SynthConfig(images=images))), flush=True)
    print(f"[2/6] training clip-resnet for up to {max_minutes:g} min into {model}", flush=True)
    summary = train(TrainRequest(data=str(data), out=str(model), preset="clip-resnet", max_minutes=max_minutes))
    print("[3/6] evaluating on the test split", flush=True)
    result = evaluate(EvalRequest(model=str(model), data=str(data), plot=str(model / "embedding_map_test.png")))
    print(format_metrics(result))
    print(f"[4/6] indexing {data / 'images'} into the embedded store {store}", flush=True)
    report = index(IndexRequest(path=str(data / "images"), model=str(model), store=str(store),
                                json_report=str(out / "index_report.json")))
    print(report.summary())
    print(f"[5/6] query from the store in-process: {DEMO_QUERY!r}", flush=True)
    for rank, (score, path) in enumerate(_query(model, store, DEMO_QUERY), 1):
        print(f"  {rank}. {score:.3f}  {path}")
    print(f"[6/6] starting the search service (Ray Serve) on 127.0.0.1:{port} (HTTP) and :{grpc_port} (gRPC)",
          flush=True)
    from photoseek.serving import service
    from photoseek.serving.client import SearchCall, format_table, search

    running = service.start(service.ServeRequest(model=str(model), store=str(store), port=port,
                                                 grpc_port=grpc_port))
    try:
        print(running.describe())
        print(f"$ photoseek search {DEMO_QUERY!r} --server {running.http_url} --limit 5")
        print(format_table(search(SearchCall(query=DEMO_QUERY, server=running.http_url, limit=5))))
        print(f"$ photoseek search {DEMO_QUERY!r} --grpc {running.grpc_target} --limit 3")
        print(format_table(search(SearchCall(query=DEMO_QUERY, grpc=running.grpc_target, limit=3))))
        print("\nWhere to look:")
        print(f"  web page          {running.http_url}/   (API docs {running.http_url}/docs)")
        print(f"  model directory   {model}  (id {summary.get('model_id')})")
        print(f"  training curve    {model / 'training_curve.png'}")
        print(f"  training log      {model / 'train_log.jsonl'}")
        print(f"  embedding map     {result['plot']}")
        print(f"  index report      {out / 'index_report.json'}")
        print(f"  store             {store}  (photoseek info --store {store})")
        print(f"  serve it again    photoseek serve --model {model} --store {store}")
        if wait if wait is not None else sys.stdin.isatty():
            print("\nServing until Ctrl-C ...", flush=True)
            _wait_for_interrupt()
    finally:
        service.stop(running)
    return 0


def _wait_for_interrupt() -> None:
    import signal
    import threading

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()


def _query(model: Path, store_dir: Path, text: str, limit: int = 5) -> list[tuple[float, str]]:
    from photoseek.encoders.encoder import Encoder
    from photoseek.indexer.pipeline import DEFAULT_ALIAS
    from photoseek.indexer.store import open_store

    vector = Encoder.load(model).encode_texts([text])[0]
    with open_store(str(store_dir)) as store:
        hits = store.search(DEFAULT_ALIAS, vector, limit=limit)
    return [(h.score, h.payload["paths"][0]) for h in hits]
