"""Training without Ray (the loop and the run) and one real TorchTrainer run with two workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from photoseek.encoders.checkpoint import load_model_dir
from photoseek.encoders.encoder import Encoder
from photoseek.encoders.train.data import epoch_batches
from photoseek.encoders.train.loop import lr_factor
from photoseek.encoders.train.session import LocalCheckpointIO, run_training
from photoseek.encoders.train.trainer import RunMismatch, TrainRequest, build_job, train


def test_tiny_model_directory_is_complete(tiny_model_dir: Path) -> None:
    for name in ("config.yaml", "weights.pt", "vocab.json", "meta.json", "train_log.jsonl", "training_curve.png"):
        assert (tiny_model_dir / name).is_file(), name
    log = [json.loads(line) for line in (tiny_model_dir / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all("t2i" in r["val"] for r in log)
    meta = json.loads((tiny_model_dir / "meta.json").read_text())
    best = max(log, key=lambda r: r["val_rsum"])
    assert meta["epoch"] == best["epoch"] and meta["val"]["rsum"] == best["val_rsum"]  # selected on val, not test
    enc = Encoder.load(tiny_model_dir, device="cpu")
    assert enc.encode_texts(["a red circle"]).shape == (1, 32)


def test_epoch_batches_share_one_permutation_across_ranks() -> None:
    both = [np.concatenate(pair) for pair in zip(epoch_batches(20, 8, 0, 0, 0, 2), epoch_batches(20, 8, 0, 0, 1, 2))]
    single = list(epoch_batches(20, 8, 0, 0))
    assert len(both) == len(single) == 2  # the ragged tail of 4 is dropped
    for a, b in zip(both, single):
        assert sorted(a) == sorted(b)
    assert not np.array_equal(np.concatenate(single), np.concatenate(list(epoch_batches(20, 8, 1, 0))))


def test_lr_warms_up_then_follows_cosine() -> None:
    assert lr_factor(0, 0.0, 10) == pytest.approx(0.1)
    assert lr_factor(10, 0.0, 10) == pytest.approx(1.0)
    assert lr_factor(50, 0.5, 10) == pytest.approx(0.5)
    assert lr_factor(90, 1.0, 10) == pytest.approx(0.0, abs=1e-9)


class CrashAfter(LocalCheckpointIO):
    """Saves like the real thing, then dies after `n` saves, as a killed run would."""

    def __init__(self, folder: Path, n: int):
        super().__init__(folder)
        self.left = n

    def save(self, payload, metrics) -> None:
        super().save(payload, metrics)
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt("simulated kill")


def test_interrupted_run_resumes_to_the_same_weights(synth_dir: Path, tmp_path: Path) -> None:
    job, _ = build_job(TrainRequest(data=str(synth_dir), out=str(tmp_path / "a"), preset="tiny", epochs=3))
    full = run_training(job, LocalCheckpointIO(tmp_path / "a-state"))
    job_b, _ = build_job(TrainRequest(data=str(synth_dir), out=str(tmp_path / "b"), preset="tiny", epochs=3))
    with pytest.raises(KeyboardInterrupt):
        run_training(job_b, CrashAfter(tmp_path / "b-state", 1))
    resumed = run_training(job_b, LocalCheckpointIO(tmp_path / "b-state"))
    assert resumed.epoch == full.epoch == 3 and resumed.step == full.step
    a = torch.load(tmp_path / "a-state" / "state.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b-state" / "state.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_time_budget_stops_cleanly_and_keeps_the_best(synth_dir: Path, tmp_path: Path) -> None:
    job, _ = build_job(TrainRequest(data=str(synth_dir), out=str(tmp_path / "m"), preset="tiny", epochs=500,
                                    max_minutes=0.02))
    state = run_training(job, LocalCheckpointIO(tmp_path / "state"))
    assert 1 <= state.epoch < 500  # stopped by the budget (mid-epoch or at an epoch's end), not by the epochs
    assert 1.2 <= state.elapsed < 10
    _, _, meta = load_model_dir(tmp_path / "m")
    assert meta["epoch"] == state.best_epoch
    # A second attempt finds the budget spent and trains no further.
    again = run_training(job, LocalCheckpointIO(tmp_path / "state"))
    assert again.epoch == state.epoch


def test_a_different_preset_in_the_same_out_is_refused(synth_dir: Path, tmp_path: Path) -> None:
    build_job(TrainRequest(data=str(synth_dir), out=str(tmp_path / "m"), preset="tiny", epochs=1))
    with pytest.raises(RunMismatch, match="--fresh"):
        build_job(TrainRequest(data=str(synth_dir), out=str(tmp_path / "m"), preset="trial1-bow"))
    build_job(TrainRequest(data=str(synth_dir), out=str(tmp_path / "m"), preset="trial1-bow", fresh=True))


def test_caption_only_preset_trains_on_caption_pairs(synth_dir: Path, tmp_path: Path) -> None:
    job, cfg = build_job(TrainRequest(data=str(synth_dir), out=str(tmp_path / "bow"), preset="trial1-bow", epochs=2))
    job.model["optim"]["batch_size"] = 16
    state = run_training(job, LocalCheckpointIO(tmp_path / "state"))
    assert "t2t" in state.history[-1]["val"] and not cfg.has_images
    assert not Encoder.load(tmp_path / "bow", device="cpu").has_images


@pytest.mark.ray
@pytest.mark.slow
def test_torch_trainer_two_workers_trains_and_resumes(ray_local, synth_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray-model"
    first = train(TrainRequest(data=str(synth_dir), out=str(out), preset="tiny", epochs=1, workers=2))
    assert first["last_metrics"]["epoch"] == 1 and first["model_id"].startswith("tiny-")
    second = train(TrainRequest(data=str(synth_dir), out=str(out), preset="tiny", epochs=2, workers=2))
    assert second["last_metrics"]["epoch"] == 2  # continued from the first run's checkpoint, not from scratch
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert log[1]["step"] == 2 * log[0]["step"]
    assert ray_local.is_initialized()  # a Ray that the caller started is left running


def test_a_small_dataset_gets_a_smaller_batch(synth_dir: Path, tmp_path: Path) -> None:
    job, cfg = build_job(TrainRequest(data=str(synth_dir), out=str(tmp_path / "m"), preset="clip-resnet"))
    assert cfg.optim.batch_size == 32 and job.model["optim"]["batch_size"] == 32  # 128 training images
    # Resuming the same run must not see the lowered batch as a different configuration.
    build_job(TrainRequest(data=str(synth_dir), out=str(tmp_path / "m"), preset="clip-resnet"))
