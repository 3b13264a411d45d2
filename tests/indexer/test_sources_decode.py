"""The find and decode stages against a corpus of bad and odd files, plus manifests, limits and batch shapes."""

from __future__ import annotations

import builtins
import json
import os
import resource
import tracemalloc
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoseek.indexer import decode as decode_mod
from photoseek.indexer.decode import (
    BYTES, CAMERA, FORMAT, FRAMES, HEIGHT, MODE, TAKEN_AT, TAKEN_TS, WIDTH,
    DecodeFailure, DecodeLimits, Decoder, decode_file,
)  # fmt: skip
from photoseek.indexer.records import DETAIL, IMAGE, META, OK, PATH, REASON, REL, SHA256, Reason
from photoseek.indexer.sources import FolderWalk, FoundFile, Skipped, batches, find, read_manifest, walk_folder
from photoseek.indexer.testing_corpus import EXIF_CAMERA, EXIF_TAKEN_AT, IGNORED, ORIENTATION_SIZE, make_corpus

S = 32  # decode size for corpus-wide checks


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("corpus") / "photos"
    return root, make_corpus(root)


@pytest.fixture(scope="module")
def outcomes(corpus) -> dict[str, tuple[str, dict]]:
    """rel -> (outcome, row) after find + decode; rows of skipped files carry only the find stage's fields."""
    root, _ = corpus
    found, out = [], {}
    for item in walk_folder(root):
        if isinstance(item, FoundFile):
            found.append(item)
        else:
            out[item.rel] = (item.reason, {DETAIL: item.detail})
    decoder = Decoder(S)
    for batch in batches(found, 16):
        cols = decoder(batch)
        for i, rel in enumerate(cols[REL]):
            row = {k: v[i] for k, v in cols.items()}
            out[rel] = ("ok" if row[OK] else row[REASON], row)
    return out


def _decode(root: Path, rel: str, size: int = S, limits: DecodeLimits = DecodeLimits()):
    return decode_file(str(root / rel), size, limits)


def _reason(root: Path, rel: str, limits: DecodeLimits, size: int = S) -> Reason:
    with pytest.raises(DecodeFailure) as info:
        _decode(root, rel, size, limits)
    return info.value.reason


def test_every_corpus_entry_gets_its_expected_outcome(corpus, outcomes):
    _, expected = corpus
    assert len(expected) >= 40
    wanted = {rel: o for rel, o in expected.items() if o != IGNORED}
    got = {rel: o for rel, (o, _) in outcomes.items()}
    assert got == wanted
    for rel in (r for r, o in expected.items() if o == IGNORED):
        assert not any(g == rel or g.startswith(rel + "/") for g in got), rel


def test_walk_counts_ignored_and_hidden(corpus):
    walk = walk_folder(corpus[0])
    list(walk)
    assert isinstance(walk, FolderWalk)
    assert (walk.ignored, walk.hidden, walk.repeated_dirs) == (2, 3, 1)  # README.txt, empty_notes; 3 dot-names
    shown = {i.rel for i in walk_folder(corpus[0], include_hidden=True)}
    assert ".hidden/photo.jpg" in shown


def test_walk_is_deterministic_and_sorted(corpus):
    first = [(type(i).__name__, i.rel) for i in walk_folder(corpus[0])]
    assert first == [(type(i).__name__, i.rel) for i in walk_folder(corpus[0])]
    top = [rel for _, rel in first if "/" not in rel]
    assert top == sorted(top)
    assert [rel for _, rel in first if rel.startswith("orientation/")] == [f"orientation/{o}.jpg" for o in range(1, 9)]


def test_link_outside_root_is_never_read(corpus, monkeypatch):
    root, _ = corpus
    outside = os.path.realpath(root.parent / f"{root.name}-outside")
    opened: list[str] = []
    real_os_open, real_open = os.open, builtins.open
    monkeypatch.setattr(os, "open", lambda p, *a, **k: opened.append(str(p)) or real_os_open(p, *a, **k))
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: opened.append(str(p)) or real_open(p, *a, **k))
    items = list(walk_folder(root))
    monkeypatch.undo()
    assert opened and not [p for p in opened if os.path.realpath(p).startswith(outside)]
    link = next(i for i in items if i.rel == "link_outside.jpg")
    assert isinstance(link, Skipped) and link.reason == Reason.LINK_OUTSIDE_ROOT.value


def test_link_loops_terminate(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "q" / "deep").mkdir(parents=True)
    os.symlink("../q", tmp_path / "p" / "to_q")
    os.symlink("../p", tmp_path / "q" / "to_p")  # p -> q -> p
    os.symlink("../..", tmp_path / "q" / "deep" / "up")  # back to the root
    items = list(walk_folder(tmp_path))
    loops = sorted(i.rel for i in items if i.reason == Reason.LINK_LOOP.value)
    assert loops == ["p/to_q/deep/up", "p/to_q/to_p", "q/deep/up"]


def test_unreadable_file_is_reported(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: permission bits do not stop reads (the corpus then expects 'ok')")
    (tmp_path / "secret.jpg").write_bytes(b"\xff\xd8\xff" + bytes(100))
    (tmp_path / "secret.jpg").chmod(0)
    (item,) = list(walk_folder(tmp_path))
    assert item.reason == Reason.UNREADABLE.value


def test_permission_errors_are_reported_and_the_walk_goes_on(corpus, monkeypatch):
    """The same paths as a chmod 000 file and folder, forced so they run as root too."""
    root, _ = corpus
    real_os_open, real_scandir = os.open, os.scandir

    def refuse(path, real):
        def call(p, *a, **k):
            if str(p).endswith(path):
                raise PermissionError(13, "Permission denied")
            return real(p, *a, **k)

        return call

    monkeypatch.setattr(os, "open", refuse("ok.jpg", real_os_open))
    monkeypatch.setattr(os, "scandir", refuse("a/b", real_scandir))
    got = {i.rel: i for i in walk_folder(root)}
    assert got["ok.jpg"].reason == got["a/b"].reason == Reason.UNREADABLE.value
    assert "Permission denied" in got["a/b"].detail and "a/b/c/deep.jpg" not in got
    assert isinstance(got["ok.png"], FoundFile) and "z_link_to_a" not in got
    with pytest.raises(DecodeFailure) as info:
        decode_file(str(root / "ok.jpg"), S)
    assert info.value.reason == Reason.UNREADABLE


def test_bomb_rejected_without_allocating_its_pixels(corpus):
    root, _ = corpus
    before_images = Image.core.get_stats()["new_count"]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    for rel in ("bomb.png", "bomb_sof.jpg", "bomb.gif"):
        assert _reason(root, rel, DecodeLimits()) == Reason.TOO_MANY_PIXELS
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert Image.core.get_stats()["new_count"] == before_images  # Pillow created no image storage at all
    assert peak < 5 * 2**20  # 50000 x 50000 x 3 would be 7.5 GB
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 100 * 1024


def test_pixel_limit_is_ours_not_pillows(corpus, monkeypatch):
    root, _ = corpus
    assert _reason(root, "ok.png", DecodeLimits(max_pixels=256 * 256 - 1)) == Reason.TOO_MANY_PIXELS
    assert _decode(root, "ok.png", limits=DecodeLimits(max_pixels=256 * 256)).width == 256
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would refuse anything over 2000 pixels
    assert _decode(root, "ok.png", limits=DecodeLimits(max_pixels=100_000)).height == 256


def test_file_size_limit_refuses_before_reading(corpus, tmp_path):
    root, _ = corpus
    assert _reason(root, "ok.jpg", DecodeLimits(max_bytes=100)) == Reason.FILE_TOO_LARGE
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as f:
        f.truncate(300 * 2**20)  # sparse: costs nothing unless read
    tracemalloc.start()
    assert _reason(tmp_path, "huge.jpg", DecodeLimits()) == Reason.FILE_TOO_LARGE
    assert tracemalloc.get_traced_memory()[1] < 2**20
    tracemalloc.stop()


def test_other_formats_are_not_opened(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "x.jpg", "PPM")  # a format Pillow reads but photoseek does not
    assert _reason(tmp_path, "x.jpg", DecodeLimits()) == Reason.NOT_AN_IMAGE


def test_decode_time_is_measured(corpus):
    assert _reason(corpus[0], "ok.jpg", DecodeLimits(max_seconds=0.0)) == Reason.DECODE_TIMEOUT


def test_exif_orientations_all_decode_upright(corpus):
    root, _ = corpus
    w, h = ORIENTATION_SIZE
    upright = _decode(root, "orientation/1.jpg", size=w).image.astype(int)
    top = (w - h) // 2  # fit_square pads the short side symmetrically
    for o in range(1, 9):
        p = _decode(root, f"orientation/{o}.jpg", size=w)
        assert (p.width, p.height) == ORIENTATION_SIZE, o
        red, green = p.image[top + 4, 4], p.image[top + 4, w - 5]
        assert red[0] > 200 and red[1] < 60 and green[1] > 200 and green[0] < 60, o
        assert np.abs(p.image.astype(int) - upright).mean() < 4, o


def _mean(p, region=np.s_[:, :]) -> np.ndarray:
    return p.image[region].reshape(-1, 3).mean(axis=0)


@pytest.mark.parametrize(
    "rel, mode, colour",
    [
        ("cmyk.jpg", "CMYK", (255, 0, 0)),
        ("rgb16.tif", "RGB", (255, 0, 0)),
        ("la.png", "LA", (255, 255, 255)),  # fully transparent -> white
        ("pa.tif", "PA", (255, 255, 255)),
        ("bilevel.png", "1", (255, 255, 255)),
    ],
)
def test_modes_convert_to_sensible_rgb(corpus, rel, mode, colour):
    p = _decode(corpus[0], rel, size=16)
    assert p.mode == mode
    assert np.abs(_mean(p) - colour).max() < 8


def test_transparency_composites_on_white(corpus):
    pal = _decode(corpus[0], "palette_transparent.png", size=16)
    assert np.abs(_mean(pal, np.s_[:, :8]) - (255, 0, 0)).max() < 2  # opaque red half
    assert np.abs(_mean(pal, np.s_[:, 8:]) - 255).max() < 2  # transparent half
    rgba = _decode(corpus[0], "rgba.png", size=16)
    assert np.abs(_mean(rgba, np.s_[:, :8]) - (0, 0, 255)).max() < 2
    assert np.abs(_mean(rgba, np.s_[:, 8:]) - 255).max() < 2


@pytest.mark.parametrize("rel", ["grey16.png", "grey16_be.tif", "float32.tif", "int32.tif"])
def test_wide_greys_are_scaled_not_clipped(corpus, rel):
    p = _decode(corpus[0], rel, size=64)
    top = (64 - round(64 * p.height / max(p.width, p.height))) // 2
    values = p.image[top : 64 - top, :, 0]  # the picture without fit_square's padding
    assert values.min() < 12 and values.max() > 243
    assert 90 < np.median(values) < 165  # a clipped ramp would sit at 255


@pytest.mark.parametrize("rel", ["animated.gif", "animated.png", "animated.webp"])
def test_animation_takes_first_frame(corpus, rel):
    p = _decode(corpus[0], rel, size=16)
    assert p.frames == 3
    assert np.abs(_mean(p) - (255, 0, 0)).max() < 4


def test_draft_decodes_big_jpeg_at_reduced_scale(tmp_path, monkeypatch):
    Image.linear_gradient("L").resize((800, 600)).convert("RGB").save(tmp_path / "big.jpg", quality=90)
    seen: list[tuple[int, int]] = []
    transpose = decode_mod.ImageOps.exif_transpose
    monkeypatch.setattr(decode_mod.ImageOps, "exif_transpose", lambda im: seen.append(im.size) or transpose(im))
    small = decode_file(str(tmp_path / "big.jpg"), 64)
    full = decode_file(str(tmp_path / "big.jpg"), 800)
    assert seen == [(100, 75), (800, 600)]  # 1/8 scale for a 64 px target
    assert (small.width, small.height) == (full.width, full.height) == (800, 600)
    assert small.image.shape == (64, 64, 3)


def test_exif_metadata(corpus):
    p = _decode(corpus[0], "exif_camera.jpg")
    assert (p.taken_at, p.camera) == (EXIF_TAKEN_AT, EXIF_CAMERA)
    assert p.taken_ts == int(datetime.fromisoformat(EXIF_TAKEN_AT).timestamp())
    plain = _decode(corpus[0], "ok.png")
    assert (plain.taken_at, plain.taken_ts, plain.camera, plain.format) == (None, None, None, "PNG")


def test_decoder_columns_are_consistent(corpus):
    root, _ = corpus
    rels = ["ok.jpg", "text.jpg", "bomb.png", "exif_camera.jpg", "gone.jpg"]
    batch = {PATH: [str(root / r) for r in rels], REL: rels, META: [{"i": i} for i in range(5)], "extra": np.arange(5)}
    out = Decoder(S)(batch)
    assert {len(v) for v in out.values()} == {5}
    assert out[IMAGE].shape == (5, S, S, 3) and out[IMAGE].dtype == np.uint8
    assert out[OK].tolist() == [True, False, False, True, False]
    assert out[REASON] == ["", "not_an_image", "too_many_pixels", "", "unreadable"]
    assert not out[IMAGE][~out[OK]].any()
    for col in (WIDTH, HEIGHT, BYTES, TAKEN_TS, FRAMES):
        assert out[col].dtype == np.int64 and (out[col][~out[OK]] == -1).all(), col
    for col in (REASON, DETAIL, SHA256, FORMAT, TAKEN_AT, CAMERA, MODE):
        assert all(isinstance(v, str) for v in out[col]), col
    assert out[SHA256][0] and out[TAKEN_AT][3] == EXIF_TAKEN_AT and out[TAKEN_AT][0] == ""
    assert out[META] == batch[META] and out["extra"] is batch["extra"]
    again = Decoder(S)({**batch, OK: out[OK], REASON: out[REASON], DETAIL: out[DETAIL]})
    assert again[REASON] == out[REASON]  # failed rows pass through untouched


def test_duplicate_and_in_root_link_share_a_hash(outcomes):
    digests = {outcomes[r][1][SHA256] for r in ("ok.jpg", "duplicate_of_ok.jpg", "link_in_root.jpg", "UPPER.JPEG")}
    assert len(digests) == 1


def test_manifest_csv_with_metadata(corpus, tmp_path):
    root, _ = corpus
    manifest = root.parent / "list.csv"  # beside the corpus, so the walk tests never see it
    (tmp_path / "far.jpg").write_bytes((root / "ok.jpg").read_bytes())
    os.symlink(tmp_path / "far.jpg", root.parent / "far_link.jpg")
    manifest.write_text(
        f"path,caption,album\nphotos/ok.jpg,a man,space\n{root / 'ok.png'},\"in, quotes\",x\nmissing.jpg,,\n"
        "../escape.jpg,,\nfar_link.jpg,,\nphotos/empty.jpg,,\n"
    )
    items = list(read_manifest(manifest))
    assert isinstance(items[0], FoundFile) and items[0].meta == {"caption": "a man", "album": "space"}
    assert items[0].rel == "photos/ok.jpg" and items[0].path == str(root / "ok.jpg")
    assert items[1].meta["caption"] == "in, quotes" and items[1].path == str(root / "ok.png")
    assert [(i.reason, i.detail) for i in items[2:4]] == [
        ("unreadable", "no such file"),
        ("link_outside_root", "outside the manifest's folder"),
    ]
    assert items[4].reason == "link_outside_root"  # a relative path through a link that leads out
    assert items[5].reason == "empty_file"


def test_manifest_jsonl_keeps_json_types(tmp_path, corpus):
    manifest = tmp_path / "list.jsonl"
    rows = [{"path": str(corpus[0] / "ok.jpg"), "tags": ["a", "b"], "rating": 4}, {"path": "nope.jpg"}]
    manifest.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    first, second = find(manifest)
    assert first.meta == {"tags": ["a", "b"], "rating": 4} and first.size > 0
    assert second.reason == "unreadable"


@pytest.mark.parametrize(
    "name, text, where",
    [
        ("no_path.csv", "file,caption\na.jpg,x\n", "no_path.csv:1"),
        ("extra_cells.csv", "path,caption\na.jpg,x\nb.jpg,y,z\n", "extra_cells.csv:3"),
        ("empty_path.csv", "path\n\"a.jpg\"\n\"\"\n", "empty_path.csv:3"),
        ("bad.jsonl", '{"path": "a.jpg"}\n\n{"path": oops}\n', "bad.jsonl:3"),
        ("list.jsonl", '{"path": "a.jpg"}\n["a.jpg"]\n', "list.jsonl:2"),
        ("nokey.jsonl", '{"file": "a.jpg"}\n', "nokey.jsonl:1"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path, name, text, where):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=where):
        list(read_manifest(tmp_path / name))


def test_find_dispatch(corpus, tmp_path):
    assert isinstance(find(corpus[0]), FolderWalk)
    (tmp_path / "notes.txt").write_text("x")
    for bad in (tmp_path / "notes.txt", tmp_path / "missing"):
        with pytest.raises(ValueError):
            find(bad)


def test_batches_shapes():
    files = [FoundFile(f"/x/{i}.jpg", f"{i}.jpg", 10 + i, 1_000 + i, {"i": i}) for i in range(5)]
    out = list(batches(files, 2))
    assert [len(b[PATH]) for b in out] == [2, 2, 1]
    assert set(out[0]) == {PATH, REL, META, "size", "mtime_ns"}
    assert out[2]["size"].dtype == np.int64 and out[2]["size"].tolist() == [14]
    assert out[1][META] == [{"i": 2}, {"i": 3}]
    with pytest.raises(TypeError):
        list(batches([Skipped("/x", "x", "unreadable", "")], 2))
    with pytest.raises(ValueError):
        list(batches(files, 0))
