"""`photoseek search` against the running service, and indexing through the service that owns the store."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
from servetools import API_KEY, dated_jpeg

from photoseek.cli import main

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_search_command_over_http_and_grpc(service, capsys, monkeypatch):
    monkeypatch.setenv("PHOTOSEEK_API_KEY", API_KEY)
    assert main(["search", "a large red circle", "--server", service.http_url, "--limit", "3"]) == 0
    table = capsys.readouterr().out
    assert "3 results from photos-tiny-" in table and "score" in table
    assert main(["search", "a large red circle", "--grpc", service.grpc_target, "--limit", "2", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["kind"] == "text" and len(reply["results"]) == 2
    monkeypatch.delenv("PHOTOSEEK_API_KEY")
    assert main(["search", "x", "--server", service.http_url]) == 1
    assert "HTTP 401" in capsys.readouterr().err


def test_index_and_info_write_through_the_running_service(service, tiny_model_dir, tmp_path, capsys):
    """The service holds the embedded store; `photoseek index` on the same folder goes through it."""
    store = str(service.store)
    assert (service.store / "service.json").stat().st_mode & 0o777 == 0o600
    new = tmp_path / "new-photos"
    new.mkdir()
    (new / "fresh-1999.jpg").write_bytes(dated_jpeg(1999, "Pentax K1", 1999))
    before = httpx.get(f"{service.http_url}/healthz").json()["points"]
    assert main(["index", str(new), "--model", str(tiny_model_dir), "--store", store]) == 0
    assert "indexed 1" in capsys.readouterr().out
    health = httpx.get(f"{service.http_url}/healthz").json()
    assert health["points"] == before + 1
    found = httpx.post(f"{service.http_url}/v1/search", headers={"Authorization": f"Bearer {API_KEY}"},
                       json={"text": "x", "filter": {"camera": "Pentax K1"}}).json()
    assert [r["paths"] for r in found["results"]] == [[str(new / "fresh-1999.jpg")]]
    # a re-run skips it; --prune after deleting the folder removes it, still through the service
    assert main(["index", str(new), "--model", str(tiny_model_dir), "--store", store]) == 0
    assert "skipped (unchanged) 1" in capsys.readouterr().out
    shutil.rmtree(new)
    new.mkdir()
    assert main(["index", str(new), "--model", str(tiny_model_dir), "--store", store, "--prune"]) == 0
    assert "pruned 1" in capsys.readouterr().out
    assert httpx.get(f"{service.http_url}/healthz").json()["points"] == before
    assert main(["info", "--store", store, "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert infos[0]["points"] == before and infos[0]["aliases"] == ["photos"]


def test_admin_endpoint_needs_the_owners_token(service):
    body = {"op": "delete_collection", "args": {"name": "photos"}}
    for headers in ({}, {"X-Photoseek-Admin": "guess"}, {"Authorization": f"Bearer {API_KEY}"}):
        assert httpx.post(f"{service.http_url}/v1/admin/store", json=body, headers=headers).status_code == 401
    assert httpx.get(f"{service.http_url}/healthz").json()["indexed"] is True
