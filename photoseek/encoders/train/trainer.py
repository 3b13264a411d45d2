"""`photoseek train`: read the data, prepare it once, then run Ray Train's TorchTrainer over it."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from photoseek.encoders.config import ModelConfig
from photoseek.encoders.data.formats import load_captions
from photoseek.encoders.registry import get_preset
from photoseek.encoders.tokenizer import Vocabulary
from photoseek.encoders.train.data import prepare_split
from photoseek.encoders.train.session import TrainJob
from photoseek.ray_setup import init_ray

RUN_DIR = ".run"  # under the model directory: Ray Train's storage, the decoded-image cache and the job file


@dataclass
class TrainRequest:
    """The `photoseek train` entry point's settings (YAML section `train`, flags override)."""

    data: str
    out: str
    preset: str = "clip-resnet"
    epochs: int | None = None  # None: the preset's
    max_minutes: float | None = None
    workers: int = 1
    gpu: bool = False
    amp: bool | None = None  # bf16 autocast; None: on for GPUs and for CPUs with native bf16 (AVX512-BF16, AMX)
    seed: int = 0
    val_images: int = 1000  # validation uses at most this many val images, to keep epochs cheap
    ray_address: str | None = None
    fresh: bool = False  # discard an earlier run in `out` instead of resuming it
    max_failures: int = 0  # worker crashes Ray Train recovers from by restarting at the last checkpoint


class RunMismatch(ValueError):
    """`out` holds a different run than the one asked for."""


def build_job(req: TrainRequest) -> tuple[TrainJob, ModelConfig]:
    """Everything up to the first step: dataset summary, vocabulary, decoded splits, the job file."""
    out = Path(req.out).resolve()
    run = out / RUN_DIR
    if req.fresh and out.exists():
        shutil.rmtree(run, ignore_errors=True)
        (out / "train_log.jsonl").unlink(missing_ok=True)
    cfg = get_preset(req.preset)
    if req.epochs is not None:
        cfg.optim.epochs = req.epochs
    captions = load_captions(req.data)
    print(captions.summary(), flush=True)
    for problem in captions.problems[:5]:
        print(f"  skipped: {problem}", flush=True)
    train_items = captions.split("train")
    if not train_items:
        raise ValueError(f"{req.data} has no training images (splits found: {captions.summary()})")
    if len(train_items) < cfg.optim.batch_size * 2:  # a small dataset still gets several steps per epoch
        cfg.optim.batch_size = max(2 * req.workers, len(train_items) // 4 // req.workers * req.workers)
        print(f"note: {len(train_items)} training images; batch size lowered to {cfg.optim.batch_size}", flush=True)
    job_file = run / "job.json"
    earlier = json.loads(job_file.read_text()) if job_file.is_file() else None
    _check_same_run(earlier, cfg, captions.root, out)
    vocab = Vocabulary(earlier["vocab"]) if earlier else Vocabulary.build(
        (c for it in train_items for c in it.captions), min_freq=cfg.optim.min_vocab_freq)
    size, decode = cfg.vision.image_size, cfg.has_images
    cache = run / "cache"
    train = prepare_split(captions, "train", size, cache, decode=decode, threads=os.cpu_count() or 2)
    val = prepare_split(captions, "val", size, cache, limit=req.val_images, decode=decode, threads=os.cpu_count() or 2)
    if val is None:
        print("warning: no validation split; the last epoch's weights are kept", flush=True)
    job = TrainJob(model=cfg.to_dict(), vocab=vocab.words, train=(str(train.images_file), str(train.meta_file)),
                   val=(str(val.images_file), str(val.meta_file)) if val else None, out=str(out),
                   epochs=cfg.optim.epochs, max_seconds=req.max_minutes * 60 if req.max_minutes else None,
                   seed=req.seed, amp=req.amp, dataset=str(captions.root))
    run.mkdir(parents=True, exist_ok=True)
    job_file.write_text(json.dumps({"preset": cfg.name, "model": cfg.to_dict(), "dataset": str(captions.root),
                                    "vocab": vocab.words, "request": asdict(req)}))
    return job, cfg


def _check_same_run(earlier: dict | None, cfg: ModelConfig, root: Path, out: Path) -> None:
    if earlier is None:
        return
    # The epoch count may grow between attempts (train longer); anything else must match.
    before, now = dict(earlier["model"]), cfg.to_dict()
    before["optim"] = {**before["optim"], "epochs": None}
    now["optim"] = {**now["optim"], "epochs": None}
    if before != now or earlier["dataset"] != str(root):
        raise RunMismatch(f"{out} holds a run of preset {earlier['preset']!r} on {earlier['dataset']}; to resume it ask "
                          f"for the same preset and data, or pass --fresh to discard it, or choose another --out")


def train(req: TrainRequest) -> dict:
    """Run (or resume) training; returns a summary dict. Starts Ray locally unless an address is given."""
    t0 = time.monotonic()
    job, cfg = build_job(req)
    result = _fit(job, req)
    summary = {"out": job.out, "preset": cfg.name, "seconds": round(time.monotonic() - t0, 1), **result}
    meta_file = Path(job.out) / "meta.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        summary.update(model_id=meta["model_id"], best_epoch=meta.get("epoch"), val=meta.get("val"))
    return summary


def _fit(job: TrainJob, req: TrainRequest) -> dict:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from photoseek.encoders.train.worker import train_loop_per_worker

    started_here = init_ray(req.ray_address)
    try:
        resources = ray.cluster_resources()
        if req.gpu and resources.get("GPU", 0) < req.workers:
            raise ValueError(f"--gpu asks for {req.workers} GPU worker(s) but the Ray cluster has "
                             f"{int(resources.get('GPU', 0))} GPU(s); drop --gpu to train on CPUs")
        cpus = int(resources.get("CPU", 1))
        per_worker = max(1, cpus // max(1, req.workers)) if not req.gpu else 1
        config = asdict(job)
        config["threads"] = per_worker
        trainer = TorchTrainer(
            train_loop_per_worker, train_loop_config=config,
            scaling_config=ScalingConfig(num_workers=req.workers, use_gpu=req.gpu,
                                         resources_per_worker={"CPU": per_worker}),
            torch_config=TorchConfig(backend="nccl" if req.gpu else "gloo"),
            run_config=RunConfig(name="ray", storage_path=str(Path(job.out) / RUN_DIR),
                                 checkpoint_config=CheckpointConfig(num_to_keep=2),
                                 failure_config=FailureConfig(max_failures=req.max_failures)),
        )
        result = trainer.fit()
        return {"last_metrics": result.metrics or {}}
    finally:
        if started_here:
            ray.shutdown()
