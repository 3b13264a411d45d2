"""Starting or joining Ray the same way everywhere: locally by default, a cluster by address."""

from __future__ import annotations

import os

# Faster failure detection on small runs; one copy of each worker line (Train's print patch tees it twice).
RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
           "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}


def init_ray(address: str | None = None) -> bool:
    """Connect to `address` or start a local Ray; returns True when this call started it (so it should stop it).

    The dashboard process is kept: Ray Train's clean-up monitor asks the state API, which needs it. It listens
    on 127.0.0.1 only.
    """
    import ray

    if ray.is_initialized():
        return False
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    ray.init(address=address, runtime_env={"env_vars": {k: os.environ[k] for k in RAY_ENV}},
             configure_logging=True, logging_level="WARNING")
    return True
