"""Fixtures for the search service: an indexed photo tree, and one running Serve app for the whole session."""

from __future__ import annotations

from pathlib import Path

import pytest
from servetools import API_KEY, MAX_UPLOAD, free_port, index_tree, make_photo_tree

__all__ = ["API_KEY", "MAX_UPLOAD"]


@pytest.fixture(scope="session")
def photo_tree(synth_dir, tmp_path_factory) -> Path:
    return make_photo_tree(synth_dir, tmp_path_factory.mktemp("served") / "photos")


@pytest.fixture(scope="session")
def service(ray_local, tiny_model_dir, photo_tree, tmp_path_factory):
    """The real app on Serve (HTTP + gRPC), API keys on, a 256 KiB upload limit; stopped at session end."""
    from photoseek.serving import service as svc

    store = tmp_path_factory.mktemp("served-store")
    index_tree(tiny_model_dir, photo_tree, store)
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# test keys\n{API_KEY}\n")
    req = svc.ServeRequest(model=str(tiny_model_dir), store=str(store), port=free_port(), grpc_port=free_port(),
                           api_keys_file=str(keys), max_upload_bytes=MAX_UPLOAD, request_timeout_s=20)
    running = svc.start(req)
    running.store = store
    yield running
    svc.stop(running)
