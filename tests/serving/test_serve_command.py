"""`photoseek serve` as a user runs it: its own process and Ray, answers, stops on SIGTERM and frees the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from servetools import free_port, index_tree

from photoseek.cli import main

pytestmark = [pytest.mark.slow]


def test_serve_command_end_to_end(tiny_model_dir, photo_tree, tmp_path, capsys):
    store = tmp_path / "store"
    index_tree(tiny_model_dir, photo_tree, store)
    port, grpc_port = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PHOTOSEEK_API_KEYS": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "photoseek.cli", "serve", "--model", str(tiny_model_dir), "--store", str(store),
         "--port", str(port), "--grpc-port", str(grpc_port), "--ray-address", "local"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:  # ready: the app answers and `start()` has returned (it writes service.json last)
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json().get("indexed") \
                        and (store / "service.json").exists():
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        assert proc.poll() is None, proc.stdout.read()
        assert (store / "service.json").exists()
        assert main(["search", "a red circle", "--server", f"http://127.0.0.1:{port}", "--limit", "2"]) == 0
        assert "2 results from photos-tiny-" in capsys.readouterr().out
        assert main(["search", "a red circle", "--grpc", f"127.0.0.1:{grpc_port}", "--limit", "1"]) == 0
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "photoseek is serving" in out and "stopping" in out
    assert not (store / "service.json").exists()
    from photoseek.indexer.store import open_store

    with open_store(str(store)) as reopened:  # the service released the store's lock
        assert reopened.count("photos") > 160
