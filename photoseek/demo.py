"""`photoseek demo`: the main job end to end on the embedded defaults, small enough for a laptop.

Makes a synthetic captioned dataset, trains the default model under a time budget, evaluates it, indexes
the dataset's photos into the embedded Qdrant store, and answers a text query from the store.
"""

from __future__ import annotations

import json
from pathlib import Path

from photoseek.encoders.data.synth import SynthConfig, write_synthetic
from photoseek.encoders.eval_run import EvalRequest, evaluate
from photoseek.encoders.evaluate import format_metrics
from photoseek.encoders.train.trainer import TrainRequest, train
from photoseek.indexer.pipeline import IndexRequest, index

DEMO_QUERY = "a large red circle on the left"


def run_demo(out: Path, images: int = 3000, max_minutes: float = 3.0) -> int:
    out = out.resolve()
    data, model, store = out / "data", out / "model", out / "photoseek-data"
    print(f"[1/5] synthetic dataset: {images} captioned scenes in {data}", flush=True)
    print(json.dumps(write_synthetic(data, SynthConfig(images=images))), flush=True)
    print(f"[2/5] training clip-resnet for up to {max_minutes:g} min into {model}", flush=True)
    summary = train(TrainRequest(data=str(data), out=str(model), preset="clip-resnet", max_minutes=max_minutes))
    print("[3/5] evaluating on the test split", flush=True)
    result = evaluate(EvalRequest(model=str(model), data=str(data), plot=str(model / "embedding_map_test.png")))
    print(format_metrics(result))
    print(f"[4/5] indexing {data / 'images'} into the embedded store {store}", flush=True)
    report = index(IndexRequest(path=str(data / "images"), model=str(model), store=str(store),
                                json_report=str(out / "index_report.json")))
    print(report.summary())
    print(f"[5/5] query: {DEMO_QUERY!r}", flush=True)
    for rank, (score, path) in enumerate(_query(model, store, DEMO_QUERY), 1):
        print(f"  {rank}. {score:.3f}  {path}")
    print("\nWhere to look:")
    print(f"  model directory   {model}  (id {summary.get('model_id')})")
    print(f"  training curve    {model / 'training_curve.png'}")
    print(f"  training log      {model / 'train_log.jsonl'}")
    print(f"  embedding map     {result['plot']}")
    print(f"  index report      {out / 'index_report.json'}")
    print(f"  store             {store}  (photoseek info --store {store})")
    return 0


def _query(model: Path, store_dir: Path, text: str, limit: int = 5) -> list[tuple[float, str]]:
    from photoseek.encoders.encoder import Encoder
    from photoseek.indexer.pipeline import DEFAULT_ALIAS
    from photoseek.indexer.store import open_store

    vector = Encoder.load(model).encode_texts([text])[0]
    with open_store(str(store_dir)) as store:
        hits = store.search(DEFAULT_ALIAS, vector, limit=limit)
    return [(h.score, h.payload["paths"][0]) for h in hits]
