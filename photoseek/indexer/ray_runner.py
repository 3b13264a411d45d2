"""The Ray runner: the same stages composed by Ray Data. Decode runs as tasks, embedding in a fixed pool of
actors that keep the model resident (on a GPU each with --gpu), and this process writes: an embedded store
has exactly one owner.
"""

from __future__ import annotations

import json
from typing import Any

from photoseek.indexer.decode import DecodeLimits, Decoder
from photoseek.indexer.embed import Embedder
from photoseek.indexer.local_runner import record_failures
from photoseek.indexer.records import PATH
from photoseek.indexer.report import IndexReport
from photoseek.indexer.sink import QdrantWriter
from photoseek.indexer.sources import FoundFile
from photoseek.progress import Progress
from photoseek.ray_setup import init_ray

# Whole-CPU actors on a small machine leave no CPU for the decode tasks and the pipeline stalls silently.
ACTOR_CPUS = 0.5
# Half a CPU per decode task: beside a 0.5-CPU actor on 2 cores, 1-CPU tasks ran one at a time (137 images/s
# on 2,000 photos); half-CPU tasks overlap their file reads and ran 153 images/s.
DECODE_CPUS = 0.5


def decode_batch(batch: dict[str, Any], size: int, limits: DecodeLimits) -> dict[str, Any]:
    """Decoder as a plain function, so Ray Data runs it as stateless tasks."""
    return Decoder(size, limits)(batch)


def run_ray(req, todo: list[FoundFile], image_size: int, writer: QdrantWriter, report: IndexReport,
            embedder_cls: type = Embedder) -> None:
    """Decode tasks -> embed actors -> this process writes. `embedder_cls` lets tests inject failures."""
    import ray

    started = init_ray(req.ray_address)
    try:
        progress = Progress("indexing (ray)", total=len(todo), unit="images", enabled=req.progress)
        if todo:
            dataset = _dataset(req, todo, image_size, embedder_cls)
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                record_failures(batch, report)
                writer(batch)
                progress.update(len(batch[PATH]))
        progress.close()
    finally:
        if started:
            ray.shutdown()


def _dataset(req, todo: list[FoundFile], image_size: int, embedder_cls: type):
    import ray

    rows = [{"path": f.path, "rel": f.rel, "size": f.size, "mtime_ns": f.mtime_ns, "meta": json.dumps(f.meta)}
            for f in todo]
    ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // req.batch_size, 1000)))
    ds = ds.map_batches(decode_batch, fn_kwargs={"size": image_size, "limits": req.limits},
                        batch_size=req.batch_size, batch_format="numpy", num_cpus=DECODE_CPUS)
    return ds.map_batches(
        # Ray pins OMP threads to the actor's (fractional) CPU share; "auto" sizes torch's pool on the actor's
        # own node, where it shares the cores with the decode tasks.
        embedder_cls, fn_constructor_kwargs={"model_dir": req.model, "threads": None if req.gpu else "auto"},
        compute=ray.data.ActorPoolStrategy(size=req.actors), batch_size=req.batch_size, batch_format="numpy",
        num_cpus=ACTOR_CPUS, num_gpus=1 if req.gpu else 0)  # Ray Data restarts a killed actor and retries its batch
