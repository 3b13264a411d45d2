"""The training loop in plain PyTorch: no Ray here, so it runs and tests in one process.

Distributed runs pass a `Dist` whose gather and max-reduce go through torch.distributed.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from photoseek.encoders.augment import augment_batch, token_dropout
from photoseek.encoders.config import ModelConfig
from photoseek.encoders.losses import model_loss
from photoseek.encoders.tokenizer import UNK, Tokenizer
from photoseek.encoders.train.data import epoch_batches, load_batch, steps_per_epoch
from photoseek.progress import format_seconds


@dataclass
class Dist:
    """What the loop needs from a process group; the defaults are a single process."""

    rank: int = 0
    world: int = 1
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda x: x  # (b, D) -> (world * b, D), keeping gradients
    max_all: Callable[[float], float] = lambda v: v  # the same value on every rank

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainState:
    """Everything a resumed run needs beside the weights and the optimizer."""

    epoch: int = 0  # epochs completed
    step: int = 0
    elapsed: float = 0.0  # wall-clock seconds of training, validation and checkpoints, all attempts; the budget
    best_score: float = -1.0
    best_epoch: int = -1
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def lr_factor(step: int, progress: float, warmup: int) -> float:
    """Linear warm-up, then cosine to zero over `progress` (0..1: steps done or time spent, whichever is further)."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: torch.nn.Module, cfg: ModelConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on norms, biases, embeddings' positions or the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "logit_scale" in name or name.endswith("pos") else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=(0.9, 0.98), eps=1e-6)


@dataclass
class EpochPlan:
    """Fixed facts of a run the loop consults every step."""

    cfg: ModelConfig
    epochs: int
    max_seconds: float | None
    seed: int
    device: torch.device
    amp: bool = False
    log_every_s: float = 15.0


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, tokenizer: Tokenizer, images: np.ndarray,
                captions: list[tuple[str, ...]], state: TrainState, plan: EpochPlan, dist: Dist = Dist(),
                log: Callable[[str], None] = print) -> dict:
    """One pass over the training images (or until the time budget is spent). Returns loss, samples/s, stopped."""
    cfg = plan.cfg
    model.train()
    n_steps = steps_per_epoch(len(images), cfg.optim.batch_size)
    if n_steps == 0:
        raise ValueError(f"{len(images)} training images is fewer than one batch of {cfg.optim.batch_size}")
    total_steps = plan.epochs * n_steps
    rng = random.Random(f"{plan.seed}:{state.epoch}:{dist.rank}")
    gen = torch.Generator().manual_seed(hash((plan.seed, state.epoch, dist.rank)) & 0x7FFFFFFF)
    unk = tokenizer.vocab.index[UNK]
    start, last_log = time.monotonic(), time.monotonic()
    losses, samples, stopped = [], 0, False
    for i, idx in enumerate(epoch_batches(len(images), cfg.optim.batch_size, state.epoch, plan.seed,
                                          dist.rank, dist.world)):
        elapsed = dist.max_all(state.elapsed + time.monotonic() - start)
        if plan.max_seconds is not None and elapsed >= plan.max_seconds:
            stopped = True
            break
        progress = max(state.step / total_steps, elapsed / plan.max_seconds if plan.max_seconds else 0.0)
        for group in optimizer.param_groups:
            group["lr"] = cfg.optim.lr * lr_factor(state.step, progress, cfg.optim.warmup_steps)
        loss = _step(model, optimizer, tokenizer, images, captions, idx, rng, gen, unk, plan, dist)
        losses.append(loss)
        samples += len(idx) * dist.world
        state.step += 1
        if dist.is_main and time.monotonic() - last_log >= plan.log_every_s:
            last_log = time.monotonic()
            log(_progress_line(state, plan, i + 1, n_steps, losses, (last_log - start) / (i + 1),
                               samples / (last_log - start), elapsed))
    seconds = time.monotonic() - start
    state.elapsed += seconds
    return {"loss": float(np.mean(losses)) if losses else float("nan"), "samples": samples, "seconds": seconds,
            "samples_per_s": samples / seconds if seconds > 0 else 0.0, "stopped": stopped, "steps": len(losses)}


def _progress_line(state: TrainState, plan: EpochPlan, done: int, n_steps: int, losses: list[float],
                   step_s: float, rate: float, elapsed: float) -> str:
    """'epoch 3/40 step 20/62 loss 1.2345 410 samples/s, epoch ETA 0:10, run ETA 9:30'."""
    epoch_left = (n_steps - done) * step_s
    run_left = epoch_left + (plan.epochs - state.epoch - 1) * n_steps * step_s
    if plan.max_seconds is not None:
        run_left = min(run_left, max(0.0, plan.max_seconds - elapsed))
    return (f"epoch {state.epoch + 1}/{plan.epochs} step {done}/{n_steps} loss {np.mean(losses[-20:]):.4f} "
            f"{rate:.0f} samples/s, epoch ETA {format_seconds(epoch_left)}, run ETA {format_seconds(run_left)}")


def _step(model, optimizer, tokenizer, images, captions, idx, rng, gen, unk, plan: EpochPlan, dist: Dist) -> float:
    cfg = plan.cfg
    pair = not cfg.has_images
    batch, texts, texts_b = load_batch(images, captions, idx, rng, per_image=cfg.optim.captions_per_image, pair=pair)
    if cfg.has_images:
        pixels, texts = augment_batch(batch, texts, cfg.augment, gen)
        pixels = pixels.to(plan.device, non_blocking=True)
    else:
        pixels = None
    ids = _ids(tokenizer, texts, cfg.augment.token_dropout, unk, gen, plan.device)
    ids_b = _ids(tokenizer, texts_b, cfg.augment.token_dropout, unk, gen, plan.device) if pair else None
    with torch.autocast(plan.device.type, dtype=torch.bfloat16, enabled=plan.amp):
        out = model(pixels, ids, ids_b)
    out = {k: (dist.gather(v.float()) if k != "logit_scale" else v.float()) for k, v in out.items()}
    loss = model_loss(cfg.loss, out)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return float(loss.detach())


def _ids(tokenizer: Tokenizer, texts: list[str], p: float, unk: int, gen: torch.Generator,
         device: torch.device) -> torch.Tensor:
    ids = token_dropout(tokenizer(texts), p, unk, gen)  # (b, T)
    longest = int((ids != 0).sum(1).max())
    return ids[:, : max(1, longest)].to(device)  # padding past the longest caption changes nothing; skip its cost
