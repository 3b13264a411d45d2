"""`photoseek index` end to end on real stores: bad files, resume, duplicates, changes, prune, kills."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from photoseek.indexer.embed import Embedder
from photoseek.indexer.pipeline import IndexRequest, index
from photoseek.indexer.store import open_store


def _points(store_dir: Path) -> dict[str, dict]:
    with open_store(str(store_dir)) as store:
        (info,) = store.collections()
        return {r.id: r.payload for r in store.scroll(info.name)}


def _req(path: Path, model: Path, store: Path, **kw) -> IndexRequest:
    return IndexRequest(path=str(path), model=str(model), store=str(store), progress=False, **kw)


def test_every_corpus_file_is_indexed_or_reported_with_its_reason(corpus_dir, tiny_model_dir, tmp_path) -> None:
    root, expected = corpus_dir
    report = index(_req(root, tiny_model_dir, tmp_path / "store"))
    failed = {f["path"]: f["reason"] for f in report.failed}
    for rel, outcome in expected.items():
        if outcome != "ignored":
            assert failed.get(str(root / rel), "ok") == outcome, rel
    ok_files = [rel for rel, outcome in expected.items() if outcome == "ok"]
    assert report.indexed + report.duplicates == len(ok_files)
    points = _points(tmp_path / "store")
    assert len(points) == report.indexed  # one point per distinct content
    assert sum(len(p["files"]) for p in points.values()) == len(ok_files)


def test_rerun_skips_unchanged_and_duplicates_collapse(photo_folder, tiny_model_dir, tmp_path) -> None:
    dup = photo_folder / "album0" / "copy-of-first.jpg"
    first = sorted((photo_folder / "album1").iterdir())[0]
    shutil.copyfile(first, dup)
    report = index(_req(photo_folder, tiny_model_dir, tmp_path / "store", json_report=str(tmp_path / "r.json")))
    assert (report.indexed, report.duplicates, report.failed) == (160, 1, [])
    saved = json.loads((tmp_path / "r.json").read_text())
    assert {"indexed", "skipped", "duplicates", "failed", "seconds"} <= set(saved)
    points = _points(tmp_path / "store")
    assert len(points) == 160
    both = [p for p in points.values() if len(p["paths"]) == 2]
    assert len(both) == 1 and set(both[0]["paths"]) == {str(first), str(dup)}
    again = index(_req(photo_folder, tiny_model_dir, tmp_path / "store"))
    assert (again.indexed, again.skipped, again.duplicates) == (0, 161, 0)
    assert _points(tmp_path / "store") == points


def test_changed_file_moves_to_its_new_content_and_prune_removes_gone_files(photo_folder, tiny_model_dir,
                                                                            tmp_path) -> None:
    store = tmp_path / "store"
    index(_req(photo_folder, tiny_model_dir, store))
    a, b, c = sorted((photo_folder / "album2").iterdir())[:3]
    shutil.copyfile(b, a)  # a's content changes to b's: a's old point goes, b's point lists both
    c.unlink()
    report = index(_req(photo_folder, tiny_model_dir, store))
    assert report.indexed == 0 and report.duplicates == 1 and report.pruned == 0
    points = _points(store)
    assert len(points) == 159  # a's old content is gone; c is still there without --prune
    assert any(set(p["paths"]) == {str(a), str(b)} for p in points.values())
    pruned = index(_req(photo_folder, tiny_model_dir, store, prune=True))
    assert pruned.pruned == 1 and len(_points(store)) == 158
    assert all(str(c) not in p["paths"] for p in _points(store).values())


def test_prune_only_touches_the_folder_being_indexed(photo_folder, tiny_model_dir, tmp_path) -> None:
    """Indexing (and pruning) one folder must not delete photos indexed from another one."""
    store = tmp_path / "store"
    index(_req(photo_folder, tiny_model_dir, store))
    other = tmp_path / "other"
    other.mkdir()
    shutil.copyfile(next((photo_folder / "album0").iterdir()), other / "x.jpg")  # a duplicate of an indexed photo
    report = index(_req(other, tiny_model_dir, store, prune=True))
    assert report.pruned == 0 and len(_points(store)) == 160
    (other / "x.jpg").unlink()
    report = index(_req(other, tiny_model_dir, store, prune=True))
    assert report.pruned == 0 and len(_points(store)) == 160  # the point keeps its file in album0
    assert all(str(other / "x.jpg") not in p["paths"] for p in _points(store).values())


def test_payload_has_the_fields_filters_use(photo_folder, tiny_model_dir, tmp_path) -> None:
    index(_req(photo_folder, tiny_model_dir, tmp_path / "store", batch_size=16))
    payload = next(iter(_points(tmp_path / "store").values()))
    for key in ("files", "paths", "dirs", "sha256", "width", "height", "format", "bytes", "mtime", "model_id"):
        assert key in payload, key
    assert str(photo_folder) in payload["dirs"] and payload["format"] == "JPEG"


def test_a_killed_run_resumes_to_exactly_one_point_per_photo(photo_folder, tiny_model_dir, tmp_path) -> None:
    store = tmp_path / "store"
    cmd = [sys.executable, "-m", "photoseek.cli", "index", str(photo_folder), "--model", str(tiny_model_dir),
           "--store", str(store), "--batch-size", "8", "--decode-threads", "1"]
    env = {**os.environ, "PHOTOSEEK_PROGRESS_EVERY": "0"}
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stderr:  # progress lines; kill as soon as some batches are written
        if line.startswith("indexing: ") and int(line.split()[1].split("/")[0]) >= 24:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    report = index(_req(photo_folder, tiny_model_dir, store))
    assert report.skipped >= 24 and report.indexed + report.skipped == 160
    assert len(_points(store)) == 160


class DiesOnce(Embedder):
    """An embed actor that kills its own process on its second batch, the first time only (a marker file
    beside the model records that it happened; the restarted actor finds it and carries on)."""

    def __init__(self, model_dir: str, **kw):
        super().__init__(model_dir, **kw)
        self.marker = Path(model_dir) / "died-once.marker"
        self.calls = 0

    def __call__(self, batch):
        self.calls += 1
        if self.calls == 2 and not self.marker.exists():
            self.marker.write_text("died")
            os._exit(1)
        return super().__call__(batch)


@pytest.mark.ray
@pytest.mark.slow
def test_ray_runner_survives_a_killed_embed_actor(ray_local, photo_folder, tiny_model_dir, tmp_path) -> None:
    marker = tiny_model_dir / "died-once.marker"
    marker.unlink(missing_ok=True)
    # Ray's workers cannot import this test module: ship DiesOnce by value.
    ray_local.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        report = index(_req(photo_folder, tiny_model_dir, tmp_path / "store", runner="ray", batch_size=16),
                       embedder_cls=DiesOnce)
        assert marker.read_text() == "died"  # the actor really died mid-run
    finally:
        marker.unlink(missing_ok=True)
    assert report.failed == [] and report.indexed == 160
    assert len(_points(tmp_path / "store")) == 160


def test_long_runs_flush_as_they_go_without_rebuilding_the_index(photo_folder, tiny_model_dir, tmp_path) -> None:
    from photoseek.indexer.records import OK, PATH, REL, SHA256, VECTOR
    from photoseek.indexer.sink import QdrantWriter

    calls = []
    with open_store(str(tmp_path / "store")) as store:
        store.ensure_collection("c", 4, "m", {})
        real_flush = store.flush
        store.flush = lambda index=True: (calls.append(index), real_flush(index=index))[1]
        writer = QdrantWriter(store, "c", "m", flush_every=10)
        for start in range(0, 30, 6):
            n = 6
            writer({OK: np.ones(n, bool), PATH: [f"/p/{start + i}.jpg" for i in range(n)],
                    REL: [f"{start + i}.jpg" for i in range(n)], SHA256: [f"{start + i:064x}" for i in range(n)],
                    VECTOR: np.eye(n, 4, dtype=np.float32) + 0.1, "size": np.ones(n, np.int64),
                    "mtime_ns": np.ones(n, np.int64), "width": np.ones(n, np.int64), "height": np.ones(n, np.int64),
                    "format": ["JPEG"] * n, "bytes": np.ones(n, np.int64), "taken_at": [""] * n,
                    "taken_ts": np.full(n, -1), "camera": [""] * n, "meta": [{}] * n})
        assert calls == [False, False]  # after 12 and 24 points; never an index build mid-run
        assert store.count("c") == 30
