"""The Ray Train side of a run: checkpoints through ray.train, gradients through torch.distributed."""

from __future__ import annotations

import os
import tempfile
from dataclasses import fields
from pathlib import Path

import ray.train
import ray.train.torch
import torch
import torch.distributed as torch_dist

from photoseek.encoders.train.loop import Dist
from photoseek.encoders.train.session import TrainJob, run_training

STATE_FILE = "state.pt"


class RayCheckpointIO:
    """Resume from the run's latest checkpoint; rank 0 writes, every rank reports (Ray expects all to)."""

    def __init__(self, is_main: bool):
        self.is_main = is_main

    def latest(self) -> dict | None:
        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as folder:
            return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)

    def save(self, payload: dict | None, metrics: dict) -> None:
        if payload is None:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            torch.save(payload, Path(folder) / STATE_FILE)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))


def _gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """(b, D) from every rank -> (world * b, D); gradients flow back to each rank's own rows."""
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x), dim=0)


def _max_all(value: float) -> float:
    t = torch.tensor([value], dtype=torch.float64)
    torch_dist.all_reduce(t, op=torch_dist.ReduceOp.MAX)
    return float(t.item())


def train_loop_per_worker(config: dict) -> None:
    """Entry point Ray Train runs on every worker."""
    job = TrainJob(**{f.name: config[f.name] for f in fields(TrainJob) if f.name in config})
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    if job.threads:
        torch.set_num_threads(job.threads)
    device = ray.train.torch.get_device()
    if world > 1:
        dist = Dist(rank, world, _gather_with_grad, _max_all)
        wrap = ray.train.torch.prepare_model
    else:
        dist, wrap = Dist(), (lambda m: m)
    # Only the first worker writes the model directory and its log.
    os.makedirs(job.out, exist_ok=True)
    run_training(job, RayCheckpointIO(rank == 0), dist, device=device, wrap=wrap)
