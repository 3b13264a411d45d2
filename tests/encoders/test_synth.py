"""The synthetic caption dataset: deterministic, honest captions, Karpathy-format output."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from photoseek.encoders.data.synth import (
    COLOURS,
    SynthConfig,
    captions_for,
    captions_with_claims,
    claims_hold,
    make_scene,
    render,
    write_synthetic,
)

SMALL = SynthConfig(images=120, size=64, seed=3, val_fraction=0.1, test_fraction=0.25)
SHAPE_WORDS = {"circle": ("circle", "disc", "ball"), "square": ("square", "block"), "triangle": ("triangle",),
               "star": ("star",), "diamond": ("diamond", "rhombus"), "cross": ("cross", "plus")}
SIZE_WORDS = {"small": ("small", "little"), "medium": ("medium", "mid"), "large": ("large", "big")}


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def scenes(n: int, size: int = 128) -> list[tuple]:
    """(scene, captions-with-claims) pairs from fixed seeds."""
    out = []
    for i in range(n):
        rng = random.Random(f"test:{i}")
        scene = make_scene(rng, size)
        out.append((scene, captions_with_claims(scene, rng)))
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    calls: list[int] = []
    summary = write_synthetic(out, SMALL, progress=calls.append)
    return out, summary, json.loads((out / "dataset_synth.json").read_text()), calls


def files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "images").iterdir())}


def test_split_counts_summary_and_progress(written):
    _, summary, data, calls = written
    assert (summary["train"], summary["val"], summary["test"]) == (78, 12, 30)
    assert summary["reused"] is False and summary["captions"] == 600
    assert data["dataset"] == "synth" and data["config"]["seed"] == 3
    splits = [e["split"] for e in data["images"]]
    assert splits == ["train"] * 78 + ["val"] * 12 + ["test"] * 30  # test is the last block
    assert [e["imgid"] for e in data["images"]] == list(range(120))
    assert calls == [100, 120]


def test_default_config_split_is_8000_1000_1000(tmp_path):
    with pytest.raises(ValueError):  # fractions are validated before anything is written
        write_synthetic(tmp_path / "bad", replace(SMALL, val_fraction=0.6, test_fraction=0.5))
    assert not (tmp_path / "bad").exists()
    from photoseek.encoders.data.synth import _split_sizes
    assert _split_sizes(SynthConfig()) == (8000, 1000, 1000)


def test_images_are_jpegs_of_the_requested_size(written):
    out, _, data, _ = written
    assert len(list((out / "images").glob("*.jpg"))) == 120
    for entry in data["images"][:20]:
        with Image.open(out / "images" / entry["filename"]) as im:
            assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (64, 64))


def test_entries_have_five_distinct_captions_and_boxes_inside(written):
    _, _, data, _ = written
    for entry in data["images"]:
        raws = [s["raw"] for s in entry["sentences"]]
        assert len(raws) == 5 and len({r.lower().rstrip(".") for r in raws}) == 5
        assert all(s["tokens"] == re.findall(r"[a-z0-9]+", s["raw"].lower()) for s in entry["sentences"])
        assert 1 <= len(entry["objects"]) <= 3
        assert len({o["position"] for o in entry["objects"]}) == len(entry["objects"])
        for o in entry["objects"]:
            x, y, w, h = o["bbox"]
            assert x >= 0 and y >= 0 and x + w <= 64 and y + h <= 64 and min(w, h) >= 8


def test_same_config_is_byte_identical_and_seed_changes_it(written, tmp_path):
    out, _, _, _ = written
    again = tmp_path / "b"
    write_synthetic(again, SMALL)
    assert (again / "dataset_synth.json").read_bytes() == (out / "dataset_synth.json").read_bytes()
    assert files(again) == files(out)
    other = tmp_path / "c"
    write_synthetic(other, replace(SMALL, seed=4))
    assert (other / "dataset_synth.json").read_bytes() != (out / "dataset_synth.json").read_bytes()
    assert files(other)["000000.jpg"] != files(out)["000000.jpg"]


def test_single_image_regenerates_alone(written):
    out, _, data, _ = written
    rng = random.Random(f"{SMALL.seed}:7")
    scene = make_scene(rng, SMALL.size)
    assert captions_for(scene, rng) == [s["raw"] for s in data["images"][7]["sentences"]]
    assert render(scene).tobytes() == render(scene).tobytes()
    assert render(scene).size == (64, 64)


def test_refuses_a_folder_made_with_another_config(written):
    out, _, _, _ = written
    before = (out / "dataset_synth.json").stat().st_mtime_ns
    assert write_synthetic(out, SMALL)["reused"] is True
    assert (out / "dataset_synth.json").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="config"):
        write_synthetic(out, replace(SMALL, jpeg_quality=80))


def test_interrupted_run_is_simply_redone(tmp_path):
    out = tmp_path / "d"
    (out / "images").mkdir(parents=True)
    (out / "images" / "000000.jpg").write_bytes(b"half written")
    (out / "dataset_synth.json.tmp").write_text("{")
    config = replace(SMALL, images=5)
    assert write_synthetic(out, config)["reused"] is False
    with Image.open(out / "images" / "000000.jpg") as im:
        assert im.size == (64, 64)
    assert len(json.loads((out / "dataset_synth.json").read_text())["images"]) == 5


def test_detailed_caption_names_every_object():
    for scene, caps in scenes(200):
        first = Counter(words(caps[0][0]))
        need: Counter = Counter()
        for o in scene.objects:
            need[o.color] += 1
            need[o.shape] += 1
            need[o.size] += 1
        for key, n in need.items():
            synonyms = SHAPE_WORDS.get(key) or SIZE_WORDS.get(key) or (key,)
            assert sum(first[w] for w in synonyms) >= n, (caps[0][0], key)
        for side in ("left", "right"):
            assert first[side] >= sum(o.position.endswith(side) for o in scene.objects), caps[0][0]


def test_captions_never_name_what_is_not_there():
    for scene, caps in scenes(200):
        shown = {o.color for o in scene.objects} | set(words(scene.background))
        shapes = {w for o in scene.objects for w in SHAPE_WORDS[o.shape]}
        for text, claims in caps:
            toks = set(words(text))
            assert toks & set(COLOURS) <= shown, (text, scene)
            assert toks & {w for ws in SHAPE_WORDS.values() for w in ws} <= shapes, (text, scene)
            assert not any(("left" in t or "right" in t) and t not in ("left", "right") for t in toks), text
            assert claims_hold(claims, scene), (text, claims)


def test_side_by_side_objects_are_described_with_left_and_right():
    seen = 0
    for scene, caps in scenes(200):
        rows = [o.cell[0] for o in scene.objects]
        if len(rows) != len(set(rows)):  # two objects share a row
            seen += 1
            assert any({"left", "right"} & set(words(t)) for t, _ in caps), caps
    assert seen > 20


def test_most_captions_pick_out_their_image():
    pool = scenes(150)
    unique = [[] for _ in range(5)]
    for i, (_, caps) in enumerate(pool):
        for k, (_, claims) in enumerate(caps):
            matches = sum(claims_hold(claims, other) for other, _ in pool)
            unique[k].append(matches == 1)
    rate = [sum(u) / len(u) for u in unique]
    assert rate[0] > 0.98 and sum(rate) / 5 > 0.85, rate
