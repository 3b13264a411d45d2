"""Shared fixtures: one tiny synthetic dataset, one tiny trained model, one local Ray for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster needs no token
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.5")
os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """160 captioned scenes at 48 px: 128 train, 16 val, 16 test."""
    from photoseek.encoders.data.synth import SynthConfig, write_synthetic

    out = tmp_path_factory.mktemp("synth")
    write_synthetic(out, SynthConfig(images=160, size=48, seed=1))
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(synth_dir, tmp_path_factory) -> Path:
    """The `tiny` preset trained for two epochs in this process (no Ray)."""
    from photoseek.encoders.train.session import LocalCheckpointIO, run_training
    from photoseek.encoders.train.trainer import TrainRequest, build_job

    out = tmp_path_factory.mktemp("tiny-model")
    job, _ = build_job(TrainRequest(data=str(synth_dir), out=str(out), preset="tiny", epochs=2))
    run_training(job, LocalCheckpointIO(out / ".run" / "local"))
    return out


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for every test that needs it (starting one costs seconds)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {k: os.environ[k] for k in
                                       ("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER",
                                        "RAY_TRAIN_ENABLE_PRINT_PATCH")}})
    yield ray
    ray.shutdown()
