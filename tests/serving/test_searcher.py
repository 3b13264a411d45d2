"""The plain search class on a real embedded store: every query kind, every filter, paging, threshold."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from photoseek.serving.query import NotFound, QueryError, SearchQuery, parse_query

from servetools import dated_jpeg, index_tree


@pytest.fixture(scope="module")
def searcher(tiny_model_dir, photo_tree, tmp_path_factory):
    from photoseek.encoders.encoder import Encoder
    from photoseek.indexer.store import open_store
    from photoseek.serving.searcher import Searcher

    store_dir = tmp_path_factory.mktemp("searcher-store")
    index_tree(tiny_model_dir, photo_tree, store_dir)
    store = open_store(str(store_dir))
    yield Searcher.from_encoder(store, Encoder.load(tiny_model_dir, "cpu"))
    store.close()


def q(**body) -> SearchQuery:
    return parse_query(body, max_bytes=1 << 20, dim=None)


def names(result) -> list[str]:
    """File names of every path of every result."""
    return sorted(Path(p).name for r in result.results for p in r.paths)


def test_text_query_ranks_by_score_and_returns_payload(searcher):
    result = searcher.search(q(text="a large red circle on the left", limit=5))
    assert result.kind == "text" and len(result.results) == 5
    scores = [r.score for r in result.results]
    assert scores == sorted(scores, reverse=True)
    top = result.results[0]
    assert top.paths and top.payload["sha256"] and "dirs" not in top.payload


def test_image_query_finds_the_same_photo_first(searcher, photo_tree):
    path = sorted((photo_tree / "album-a").glob("*.jpg"))[3]
    result = searcher.search(q(image=base64.b64encode(path.read_bytes()).decode(), limit=3))
    assert result.kind == "image"
    assert str(path) in result.results[0].paths and result.results[0].score > 0.99


def test_id_query_excludes_the_photo_itself_and_pages_consistently(searcher):
    seed = searcher.search(q(text="a blue square", limit=1)).results[0]
    first = searcher.search(q(id=seed.id, limit=6))
    assert first.kind == "id" and seed.id not in [r.id for r in first.results] and len(first.results) == 6
    page2 = searcher.search(q(id=seed.id, limit=3, offset=3))
    assert [r.id for r in page2.results] == [r.id for r in first.results[3:6]]


def test_vector_query_equals_the_stored_vector_query(searcher):
    rec = searcher.store.retrieve(searcher.collection, [searcher.search(q(text="green", limit=1)).results[0].id],
                                  with_vectors=True)[0]
    result = searcher.search(q(vector=[float(x) for x in rec.vector], limit=1))
    assert result.results[0].id == rec.id and result.results[0].score == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(QueryError, match="vectors have"):
        searcher.search(q(vector=[0.1, 0.2, 0.3]))


def test_paging_splits_one_ranking(searcher):
    whole = searcher.search(q(text="a small yellow triangle", limit=10))
    parts = searcher.search(q(text="a small yellow triangle", limit=5)).results + \
        searcher.search(q(text="a small yellow triangle", limit=5, offset=5)).results
    assert [r.id for r in parts] == [r.id for r in whole.results]


def test_score_threshold_drops_weaker_hits(searcher):
    whole = searcher.search(q(text="a red circle", limit=20)).results
    cut = whole[9].score
    kept = searcher.search(q(text="a red circle", limit=20, score_threshold=cut)).results
    assert kept and all(r.score >= cut for r in kept) and len(kept) < 20


def test_filters(searcher, photo_tree):
    text = "a large red circle"
    assert names(searcher.search(q(text=text, limit=100, filter={"taken_after": "2020-01-01"}))) == \
        ["2021.jpg", "2023.jpg"]
    before = searcher.search(q(text=text, limit=100, filter={"taken_before": "2020-01-01"}))
    assert len(before.results) == 1 and names(before) == ["2019.jpg", "copy-of-2019.jpg"]  # one photo, two files
    assert names(searcher.search(q(text=text, limit=100, filter={"format": "PNG"}))) == ["scene.png"]
    assert names(searcher.search(q(text=text, limit=100, filter={"camera": "Nikon Z 6"}))) == ["2023.jpg"]
    dated = searcher.search(q(text=text, limit=100, filter={"path_prefix": str(photo_tree / "dated") + "/"}))
    assert names(dated) == ["2019.jpg", "2021.jpg", "2023.jpg", "copy-of-2019.jpg", "scene.png"]
    album = searcher.search(q(text=text, limit=100, filter={"path_prefix": str(photo_tree / "album-b")}))
    assert len(album.results) == 80 and all("/album-b/" in r.paths[0] for r in album.results)
    by_field = searcher.search(q(text=text, limit=100, filter={"fields": [{"key": "width", "gte": 60, "lte": 60}]}))
    assert names(by_field) == ["2019.jpg", "2021.jpg", "2023.jpg", "copy-of-2019.jpg"]
    combined = q(text=text, limit=100, filter={"camera": "Canon EOS R5", "taken_after": "2020-06-01"})
    assert names(searcher.search(combined)) == ["2021.jpg"]


def test_duplicate_file_is_one_result_with_both_paths(searcher, photo_tree):
    hit = searcher.search(q(image=base64.b64encode(dated_jpeg(2019, "Canon EOS R5", 2019)).decode(), limit=1))
    assert sorted(Path(p).name for p in hit.results[0].paths) == ["2019.jpg", "copy-of-2019.jpg"]


def test_photo_and_thumbnail_by_id(searcher):
    from PIL import Image
    import io

    hit = searcher.search(q(text="a red circle", limit=1)).results[0]
    assert searcher.photo(hit.id).paths == hit.paths
    jpeg = searcher.thumbnail(hit.id, 128)
    im = Image.open(io.BytesIO(jpeg))
    assert im.format == "JPEG" and max(im.size) <= 128
    with pytest.raises(NotFound):
        searcher.photo("00000000-0000-0000-0000-000000000000")
    for bad in ("../../etc/passwd", "/etc/passwd", "1", ""):
        with pytest.raises(QueryError):
            searcher.thumbnail(bad)
    with pytest.raises(QueryError, match="size"):
        searcher.thumbnail(hit.id, 4096)


def test_thumbnails_only_from_photo_roots(searcher, photo_tree):
    from photoseek.serving.searcher import Searcher

    hit = searcher.search(q(text="red", limit=1, filter={"path_prefix": str(photo_tree / "album-a")})).results[0]
    fenced = Searcher(searcher.store, searcher.model_id, searcher.dim, photo_roots=[str(photo_tree / "dated")])
    with pytest.raises(NotFound, match="outside the photo roots"):
        fenced.thumbnail(hit.id)


def test_bad_image_is_a_query_error_with_the_reason(searcher):
    with pytest.raises(QueryError, match="not_an_image"):
        searcher.search(q(image=base64.b64encode(b"this is text, not a photo").decode()))
    truncated = dated_jpeg(2020, None, 1)[:300]
    with pytest.raises(QueryError, match="truncated|corrupt"):
        searcher.search(q(image=base64.b64encode(truncated).decode()))


def test_missing_collection_answers_empty(searcher, tmp_path):
    from photoseek.indexer.store import open_store
    from photoseek.serving.searcher import Searcher

    with open_store(str(tmp_path / "empty")) as store:
        empty = Searcher(store, searcher.model_id, searcher.dim, embed_text=searcher.embed_text)
        assert empty.health()["indexed"] is False
        assert empty.search(q(text="anything")).results == []


@pytest.mark.parametrize("body, message", [
    ({}, "exactly one"),
    ({"text": "a", "id": "b"}, "exactly one"),
    ({"text": ""}, "non-empty"),
    ({"text": "a", "limit": 0}, "limit"),
    ({"text": "a", "limit": 101}, "limit"),
    ({"text": "a", "limit": "ten"}, "limit"),
    ({"text": "a", "offset": -1}, "offset"),
    ({"text": "a", "score_threshold": "nan"}, "finite"),
    ({"text": "a", "filter": {"taken_after": "last week"}}, "ISO"),
    ({"text": "a", "filter": {"path_prefix": "relative/dir"}}, "absolute"),
    ({"text": "a", "filter": {"colour": "red"}}, "unknown filter"),
    ({"text": "a", "filter": {"fields": [{"key": "a b", "match": 1}]}}, "payload field name"),
    ({"text": "a", "filter": {"fields": [{"key": "w", "match": 1.5}]}}, "string, integer"),
    ({"text": "a", "filter": {"fields": [{"key": "w", "near": 1}]}}, "one of match"),
    ({"id": "../../etc/passwd"}, "UUID"),
    ({"vector": []}, "non-empty"),
    ({"vector": [0, 0]}, "zeros"),
    ({"image": "%%%"}, "base64"),
    ({"text": "a", "colour": 1}, "unknown field"),
])
def test_malformed_requests_say_what_is_wrong(body, message):
    with pytest.raises(QueryError, match=message):
        q(**body)


def test_oversized_base64_image_is_refused_before_decoding():
    from photoseek.serving.query import TooLarge

    with pytest.raises(TooLarge):
        parse_query({"image": base64.b64encode(b"x" * 2000).decode()}, max_bytes=1000)
    assert np.isfinite(q(vector=[1.0, 0.0]).vector).all()
