"""Caption-dataset loaders on tiny fixtures written into tmp_path."""

from __future__ import annotations

import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from photoseek.encoders.data.formats import (
    detect_format,
    load_captions,
    load_coco,
    load_flickr_token,
    load_jsonl,
    load_karpathy,
)
from photoseek.encoders.data.records import DatasetError

# --- fixture writers ------------------------------------------------------------------


@lru_cache(maxsize=1)
def jpeg_bytes() -> bytes:
    """One real 8x8 JPEG, encoded once and copied to every file."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 90)).save(buf, format="JPEG")
    return buf.getvalue()


def write_images(folder: Path, names: list[str]) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes())


def karpathy_entry(filename: str, split: str, *raws: str, **extra: Any) -> dict[str, Any]:
    sentences = [{"raw": r, "tokens": r.lower().split()} for r in raws]
    return {"filename": filename, "split": split, "sentences": sentences, **extra}


def write_karpathy(folder: Path, entries: list[dict], name: str = "dataset_flickr30k.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"images": entries, "dataset": "flickr30k"}))
    return path


def write_token(folder: Path, lines: list[str], name: str = "results_20130124.token") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def write_coco(root: Path, split_year: str, captions: dict[str, list[str]]) -> Path:
    """annotations/captions_<split_year>.json for {file_name: [caption, ...]}."""
    images = [{"id": i, "file_name": name} for i, name in enumerate(captions)]
    anns = [
        {"id": 1000 * i + j, "image_id": i, "caption": c}
        for i, caps in enumerate(captions.values())
        for j, c in enumerate(caps)
    ]
    path = root / "annotations" / f"captions_{split_year}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": anns}))
    return path


def write_jsonl(folder: Path, rows: list[dict | str]) -> Path:
    """Rows are objects, or raw strings written verbatim (blank or broken lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "captions.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


# --- Karpathy -------------------------------------------------------------------------


def test_karpathy_flickr_layout(tmp_path: Path) -> None:
    write_images(tmp_path / "flickr30k-images", ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    entries = [
        karpathy_entry("a.jpg", "train", "A dog runs.", "  A brown dog.  "),
        karpathy_entry("b.jpg", "val", "A cat."),
        karpathy_entry("c.jpg", "test", "A car."),
        karpathy_entry("d.jpg", "restval", "A tree."),
    ]
    entries[3]["sentences"].append({"tokens": ["a", "tall", "tree"]})  # no raw: tokens joined
    cs = load_karpathy(write_karpathy(tmp_path, entries))
    assert cs.format == "karpathy" and cs.root == tmp_path.resolve()
    assert [(it.image_id, it.split) for it in cs.items] == [
        ("a.jpg", "train"), ("d.jpg", "train"), ("b.jpg", "val"), ("c.jpg", "test"),
    ]
    assert cs.items[0].captions == ("A dog runs.", "A brown dog.")
    assert cs.items[1].captions == ("A tree.", "a tall tree")
    assert all(it.path.is_absolute() and it.path.is_file() for it in cs.items)
    assert cs.items[0].path == (tmp_path / "flickr30k-images" / "a.jpg").resolve()
    assert cs.missing_images == [] and cs.problems == []


def test_karpathy_coco_filepath_join(tmp_path: Path) -> None:
    write_images(tmp_path / "images", ["val2014/v1.jpg", "train2014/t1.jpg"])
    entries = [
        karpathy_entry("v1.jpg", "test", "A bus.", filepath="val2014"),
        karpathy_entry("t1.jpg", "train", "A boat.", filepath="train2014"),
    ]
    cs = load_karpathy(write_karpathy(tmp_path, entries, "dataset_coco.json"))
    assert [it.image_id for it in cs.items] == ["train2014/t1.jpg", "val2014/v1.jpg"]
    assert cs.items[1].path == (tmp_path / "images" / "val2014" / "v1.jpg").resolve()


def test_karpathy_images_beside_json(tmp_path: Path) -> None:
    write_images(tmp_path, ["a.jpg"])
    cs = load_karpathy(write_karpathy(tmp_path, [karpathy_entry("a.jpg", "train", "x")]))
    assert cs.items[0].path == (tmp_path / "a.jpg").resolve()


def test_invalid_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "dataset_flickr8k.json"
    path.write_text('{"images": [\n  {"filename": "a.jpg",}\n]}')
    with pytest.raises(DatasetError, match=r"dataset_flickr8k\.json: invalid JSON at line 2"):
        load_captions(tmp_path)


def test_karpathy_wrong_structure(tmp_path: Path) -> None:
    path = tmp_path / "dataset_x.json"
    path.write_text(json.dumps({"pictures": []}))
    with pytest.raises(DatasetError, match="'images' list"):
        load_karpathy(path)
    write_karpathy(tmp_path, [karpathy_entry("a.jpg", "train", "x"), {"split": "train"}], "dataset_x.json")
    with pytest.raises(DatasetError, match=r"images\[1\] has no 'filename'"):
        load_karpathy(path)


def test_some_images_missing_is_not_fatal(tmp_path: Path) -> None:
    write_images(tmp_path / "images", ["a.jpg"])
    entries = [karpathy_entry(n, "train", "cap") for n in ("a.jpg", "gone1.jpg", "gone2.jpg")]
    cs = load_karpathy(write_karpathy(tmp_path, entries))
    assert [it.image_id for it in cs.items] == ["a.jpg"]
    assert cs.missing_images == [(tmp_path / "images" / n).resolve() for n in ("gone1.jpg", "gone2.jpg")]
    assert "2 referenced images missing" in cs.summary()


def test_all_images_missing_is_fatal(tmp_path: Path) -> None:
    entries = [karpathy_entry(n, "train", "cap") for n in ("a.jpg", "b.jpg")]
    with pytest.raises(DatasetError, match=r"all 2 referenced images are missing \(e\.g\. .*a\.jpg\); looked in .*flickr30k-images"):
        load_karpathy(write_karpathy(tmp_path, entries))


def test_empty_captions_skipped_and_reported(tmp_path: Path) -> None:
    write_images(tmp_path, ["a.jpg", "b.jpg"])
    entries = [karpathy_entry("a.jpg", "train", "ok", "   "), karpathy_entry("b.jpg", "train", "", "\n")]
    cs = load_karpathy(write_karpathy(tmp_path, entries))
    assert [(it.image_id, it.captions) for it in cs.items] == [("a.jpg", ("ok",))]
    assert any("images[0].sentences[1]: empty caption" in p for p in cs.problems)
    assert any("b.jpg has no usable captions; dropped" in p for p in cs.problems)
    entries = [karpathy_entry("a.jpg", "train", " "), karpathy_entry("b.jpg", "val", "")]
    with pytest.raises(DatasetError, match="no usable captions"):
        load_karpathy(write_karpathy(tmp_path, entries))


# --- Flickr30k token ------------------------------------------------------------------


def test_flickr_token_loads_and_records_bad_lines(tmp_path: Path) -> None:
    write_images(tmp_path / "flickr30k-images", ["1.jpg", "2.jpg"])
    lines = ["1.jpg#0\tTwo dogs.", "1.jpg#1\t Dogs play. ", "no tab here", "2.jpg\tno hash mark", "", "2.jpg#0\tA kid."]
    path = write_token(tmp_path, lines)
    cs = load_flickr_token(path)
    assert cs.format == "flickr30k-token"
    by_id = {it.image_id: it for it in cs.items}
    assert by_id["1.jpg"].captions == ("Two dogs.", "Dogs play.")
    assert by_id["2.jpg"].path == (tmp_path / "flickr30k-images" / "2.jpg").resolve()
    assert cs.problems[0].startswith(f"{path.resolve()}:3: no tab")
    assert cs.problems[1].startswith(f"{path.resolve()}:4: expected NAME.jpg#N")


def test_flickr_token_nothing_usable(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"no usable captions.*:1: no tab"):
        load_flickr_token(write_token(tmp_path, ["garbage", "more garbage"]))


def test_hash_splits_are_deterministic_and_cover_all_splits(tmp_path: Path) -> None:
    names = [f"{i:05d}.jpg" for i in range(200)]
    write_images(tmp_path / "images", names)
    write_token(tmp_path, [f"{n}#0\tcaption {n}" for n in names])
    write_jsonl(tmp_path / "j", [{"image": f"../images/{n}", "caption": "c"} for n in names])
    for load in (lambda: load_captions(tmp_path), lambda: load_captions(tmp_path / "j")):
        first, second = load(), load()
        assert first.items == second.items and len(first.items) == 200
        assert all(first.split(s) for s in ("train", "val", "test"))
        assert len(first.split("train")) > len(first.split("val"))


# --- MS-COCO --------------------------------------------------------------------------


def test_coco_train_and_val_halves(tmp_path: Path) -> None:
    train = {"t0.jpg": ["  A cat.\n", "A kitten."], "t1.jpg": ["A dog."]}
    val = {f"v{i:02d}.jpg": [f"caption {i}"] for i in range(40)}
    write_images(tmp_path / "train2014", list(train))
    write_images(tmp_path / "images" / "val2014", list(val))
    write_coco(tmp_path, "train2014", train)
    write_coco(tmp_path, "val2014", val)
    cs = load_captions(tmp_path)
    assert cs.format == "coco" and cs.root == tmp_path.resolve()
    assert [(it.image_id, it.captions) for it in cs.split("train")] == [
        ("t0.jpg", ("A cat.", "A kitten.")), ("t1.jpg", ("A dog.",)),
    ]
    assert cs.split("train")[0].path == (tmp_path / "train2014" / "t0.jpg").resolve()
    assert cs.split("val") and cs.split("test")
    assert len(cs.split("val")) + len(cs.split("test")) == 40
    assert load_coco(tmp_path).items == cs.items


def test_coco_with_test_file_and_flat_images_folder(tmp_path: Path) -> None:
    write_images(tmp_path / "images", ["v.jpg", "t.jpg"])
    write_coco(tmp_path, "val2017", {"v.jpg": ["val cap"]})
    write_coco(tmp_path, "test2017", {"t.jpg": ["test cap"]})
    cs = load_coco(tmp_path)
    assert [(it.image_id, it.split) for it in cs.items] == [("v.jpg", "val"), ("t.jpg", "test")]


def test_coco_wrong_structure_and_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "annotations" / "captions_val2014.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="'annotations' lists"):
        load_captions(tmp_path)
    path.write_text("{not json")
    with pytest.raises(DatasetError, match=r"captions_val2014\.json: invalid JSON"):
        load_captions(tmp_path)


# --- captions.jsonl -------------------------------------------------------------------


def test_jsonl_loads_and_merges(tmp_path: Path) -> None:
    write_images(tmp_path / "pics", ["a.jpg", "b.jpg"])
    write_images(tmp_path / "elsewhere", ["c.jpg"])
    c_abs = str((tmp_path / "elsewhere" / "c.jpg").resolve())
    path = write_jsonl(tmp_path / "ds", [
        {"image": "../pics/a.jpg", "caption": "first", "split": "val"},
        "",
        {"image": "../pics/a.jpg", "captions": ["second", " third "]},
        {"image": "../pics/b.jpg", "caption": "b cap", "split": "restval"},
        {"image": c_abs, "captions": ["c cap"], "split": "test"},
    ])
    cs = load_jsonl(path)
    assert cs.format == "jsonl" and cs.root == path.parent.resolve()
    assert [(it.split, it.captions) for it in cs.items] == [
        ("train", ("b cap",)), ("val", ("first", "second", "third")), ("test", ("c cap",)),
    ]
    assert cs.items[1].path == (tmp_path / "pics" / "a.jpg").resolve()
    assert cs.items[2].image_id == Path(c_abs).as_posix()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", r"captions\.jsonl:3: invalid JSON"),
        (json.dumps({"caption": "no image"}), r"captions\.jsonl:3: .*\"image\""),
        (json.dumps({"image": "a.jpg", "caption": "x", "split": "dev"}), r"captions\.jsonl:3: unknown split 'dev'"),
    ],
)
def test_jsonl_bad_line_fails_with_line_number(tmp_path: Path, bad: str, message: str) -> None:
    write_images(tmp_path, ["a.jpg"])
    path = write_jsonl(tmp_path, [{"image": "a.jpg", "caption": "ok"}, "", bad])
    with pytest.raises(DatasetError, match=message):
        load_jsonl(path)


# --- detection ------------------------------------------------------------------------


def test_detect_format_folders_and_files(tmp_path: Path) -> None:
    k = write_karpathy(tmp_path / "k", [])
    t = write_token(tmp_path / "t", [])
    j = write_jsonl(tmp_path / "j", [])
    c = write_coco(tmp_path / "c", "train2014", {})
    assert detect_format(tmp_path / "k") == ("karpathy", k.resolve())
    assert detect_format(tmp_path / "t") == ("flickr30k-token", t.resolve())
    assert detect_format(tmp_path / "j") == ("jsonl", j.resolve())
    assert detect_format(tmp_path / "c") == ("coco", (tmp_path / "c").resolve())
    assert detect_format(k) == ("karpathy", k.resolve())
    assert detect_format(t) == ("flickr30k-token", t.resolve())
    assert detect_format(j) == ("jsonl", j.resolve())
    assert detect_format(c) == ("coco", (tmp_path / "c").resolve())
    write_token(tmp_path / "k", [])  # Karpathy wins over a token file in the same folder
    assert detect_format(tmp_path / "k")[0] == "karpathy"


def test_detect_format_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_captions(tmp_path / "nope")
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError) as err:
        load_captions(tmp_path)
    for pattern in ("dataset_*.json", "*.token", "annotations/captions_*.json", "captions.jsonl"):
        assert pattern in str(err.value)
    write_karpathy(tmp_path, [], "dataset_coco.json")
    write_karpathy(tmp_path, [], "dataset_flickr30k.json")
    with pytest.raises(DatasetError, match="dataset_coco.json, dataset_flickr30k.json"):
        detect_format(tmp_path)
    with pytest.raises(DatasetError, match="not a known caption file"):
        detect_format(tmp_path / "readme.txt")


def test_summary_mentions_format_and_counts(tmp_path: Path) -> None:
    write_images(tmp_path, ["a.jpg", "b.jpg"])
    path = write_jsonl(tmp_path, [
        {"image": "a.jpg", "captions": ["x", "y"], "split": "train"},
        {"image": "b.jpg", "caption": "z", "split": "test"},
        {"image": "gone.jpg", "caption": "w", "split": "val"},
        {"image": "b.jpg", "caption": " ", "split": "test"},
    ])
    text = load_captions(tmp_path).summary()
    assert text.startswith(f"jsonl dataset at {path.parent.resolve()}: 2 images")
    assert "train 1, val 0, test 1" in text and "3 captions" in text
    assert "1 referenced images missing" in text and "1 entries skipped" in text
