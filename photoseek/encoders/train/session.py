"""One training run, epoch by epoch: validate, keep the best model, checkpoint for resume. No Ray in here.

The Ray Train worker and the in-process runner differ only in the `CheckpointIO` and `Dist` they pass.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from photoseek.encoders.checkpoint import save_model_dir
from photoseek.encoders.config import ModelConfig
from photoseek.encoders.evaluate import evaluate_split, format_metrics
from photoseek.encoders.model import JointModel
from photoseek.encoders.tokenizer import Tokenizer, Vocabulary
from photoseek.encoders.train.data import PreparedSplit
from photoseek.encoders.train.loop import Dist, EpochPlan, TrainState, make_optimizer, train_epoch

LOG_FILE = "train_log.jsonl"
CURVE_FILE = "training_curve.png"


@dataclass
class TrainJob:
    """What every worker needs; plain data so it crosses to Ray workers as a dict."""

    model: dict  # ModelConfig.to_dict()
    vocab: list[str]
    train: tuple[str, str]  # PreparedSplit files (images .npy, meta .json)
    val: tuple[str, str] | None
    out: str
    epochs: int
    max_seconds: float | None = None
    seed: int = 0
    amp: bool | None = None  # None: decided on the worker (its device, its CPU)
    threads: int | None = None
    dataset: str = ""

    def split(self, files: tuple[str, str] | None, name: str) -> PreparedSplit | None:
        return PreparedSplit(name, Path(files[0]), Path(files[1])) if files else None


class CheckpointIO(Protocol):
    def latest(self) -> dict | None: ...

    def save(self, payload: dict | None, metrics: dict) -> None: ...


def run_training(job: TrainJob, io: CheckpointIO, dist: Dist = Dist(), device: torch.device | None = None,
                 wrap=lambda m: m) -> TrainState:
    """Train until the epochs or the time budget run out; the best model by validation rsum is saved in job.out."""
    device = device or torch.device("cpu")
    cfg = ModelConfig.from_dict(job.model)
    vocab = Vocabulary(job.vocab)
    tokenizer = Tokenizer(vocab, cfg.text.context_length)
    torch.manual_seed(job.seed)  # identical initial weights on every rank
    model = JointModel(cfg, len(vocab)).to(device)
    optimizer = make_optimizer(model, cfg)
    state = _restore(io.latest(), model, optimizer)
    net = wrap(model)
    images, captions, _ = job.split(job.train, "train").load()
    val = job.split(job.val, "val").load() if (job.val and dist.is_main) else None
    amp = native_bf16(device) if job.amp is None else job.amp
    plan = EpochPlan(cfg, job.epochs, job.max_seconds, job.seed, device, amp=amp)
    if dist.is_main:
        print(f"training {cfg.name} on {device} ({'bf16 autocast' if amp else 'fp32'}), {len(images)} images", flush=True)
    if dist.is_main and state.epoch:
        print(f"resuming after epoch {state.epoch} ({state.elapsed / 60:.1f} min trained, best rsum "
              f"{state.best_score:.1f} at epoch {state.best_epoch})", flush=True)
    val_cost, since_val = 0.0, 0.0  # seconds the last validation took; training seconds since it
    while state.epoch < job.epochs:
        stats = train_epoch(net, optimizer, tokenizer, images, captions, state, plan, dist, log=_log)
        if stats["steps"] == 0:
            break  # the budget was already spent when this epoch began
        after_steps = time.monotonic()
        state.epoch += 1
        since_val += stats["seconds"]
        record = {"epoch": state.epoch, "step": state.step, "minutes": round(state.elapsed / 60, 3),
                  "loss": stats["loss"], "samples_per_s": round(stats["samples_per_s"], 1),
                  "temperature": float(1.0 / model.logit_scale.detach().exp()), "partial": stats["stopped"]}
        last = stats["stopped"] or state.epoch == job.epochs or _budget_left(job, state) < since_val
        # Validate every epoch unless that would cost more than a tenth of the training time; always at the end.
        if dist.is_main and (last or since_val >= VAL_SHARE * val_cost):
            t_val = time.monotonic()
            _validate_and_keep(model, tokenizer, vocab, val, state, record, job, device)
            val_cost, since_val = time.monotonic() - t_val, 0.0
        elif dist.is_main:
            _log_epoch(state, record, job)
        # The budget is wall-clock: validation and checkpointing count too. Every rank must agree on it.
        state.elapsed = dist.max_all(state.elapsed + time.monotonic() - after_steps)
        payload = _payload(model, optimizer, state, job) if dist.is_main else None
        io.save(payload, {k: v for k, v in record.items() if isinstance(v, (int, float))})
        if stats["stopped"]:
            if dist.is_main:
                print(f"time budget of {job.max_seconds / 60:.1f} min spent; stopping after epoch {state.epoch}", flush=True)
            break
    if dist.is_main and state.best_epoch < 0 and state.epoch > 0:
        _save_best(model, vocab, state, job, {})  # no validation split: keep the last weights
    return state


VAL_SHARE = 10.0  # train at least this many times as long as a validation takes between two validations


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast pays off here: CUDA, or a CPU whose oneDNN has native bf16 kernels."""
    if device.type == "cuda":
        return True
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe and probe())


def _budget_left(job: TrainJob, state: TrainState) -> float:
    return float("inf") if job.max_seconds is None else job.max_seconds - state.elapsed


def _log(line: str) -> None:
    print(line, flush=True)


def _log_epoch(state: TrainState, record: dict, job: TrainJob) -> None:
    """Append the epoch to the history, the log file and the curve."""
    state.history.append(record)
    out = Path(job.out)
    with open(out / LOG_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")
    try:
        from photoseek.encoders.plots import plot_training_curve

        plot_training_curve(state.history, out / CURVE_FILE)
    except Exception as exc:  # a plot must never stop training
        print(f"could not draw the training curve: {exc}", flush=True)


def _validate_and_keep(model, tokenizer, vocab, val, state: TrainState, record: dict, job: TrainJob, device) -> None:
    if val is not None:
        metrics = evaluate_split(model, tokenizer, val[0], val[1], device=device)
        record["val"] = metrics
        record["val_rsum"] = metrics["rsum"]
        if metrics["rsum"] > state.best_score:
            state.best_score, state.best_epoch = metrics["rsum"], state.epoch
            _save_best(model, vocab, state, job, metrics)
        print(f"epoch {state.epoch}: loss {record['loss']:.4f}, val {format_metrics(metrics)}"
              f"{' (best so far, saved)' if state.best_epoch == state.epoch else ''}", flush=True)
    _log_epoch(state, record, job)


def _save_best(model: JointModel, vocab: Vocabulary, state: TrainState, job: TrainJob, metrics: dict) -> None:
    meta = {"preset": model.cfg.name, "dataset": job.dataset, "epoch": state.epoch, "step": state.step,
            "train_minutes": round(state.elapsed / 60, 2), "val": metrics, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    save_model_dir(Path(job.out), model, vocab, meta)


def _payload(model, optimizer, state: TrainState, job: TrainJob) -> dict[str, Any]:
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "state": json.dumps(state.to_dict()),
            "job": json.dumps({"model": job.model, "dataset": job.dataset})}


def _restore(payload: dict | None, model, optimizer) -> TrainState:
    if payload is None:
        return TrainState()
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    return TrainState(**json.loads(payload["state"]))


class LocalCheckpointIO:
    """Checkpoints in a plain folder, for runs in this process (tests, benchmarks, debugging without Ray)."""

    def __init__(self, folder: Path):
        self.file = Path(folder) / "state.pt"

    def latest(self) -> dict | None:
        return torch.load(self.file, map_location="cpu", weights_only=True) if self.file.is_file() else None

    def save(self, payload: dict | None, metrics: dict) -> None:
        if payload is not None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(".tmp")
            torch.save(payload, tmp)
            tmp.replace(self.file)
