"""HTTP end to end through Ray Serve: a started app, real requests (keys on, 256 KiB upload limit)."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import time

import httpx
import pytest
from servetools import API_KEY, MAX_UPLOAD, dated_jpeg

pytestmark = [pytest.mark.ray, pytest.mark.slow]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service.http_url, timeout=30) as client:
        yield client


def search(http, body, headers=AUTH):
    return http.post("/v1/search", json=body, headers=headers)


def test_text_search_returns_results_with_signed_thumbnails(http):
    r = search(http, {"text": "a large red circle on the left", "limit": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == "text" and len(body["results"]) == 4 and body["model_id"].startswith("tiny-")
    timing = r.headers["server-timing"]  # search;dur=…, encode;dur=…, total;dur=…
    assert all(f"{part};dur=" in timing for part in ("search", "encode", "total"))
    hit = body["results"][0]
    assert set(hit) == {"id", "score", "paths", "payload", "thumbnail_url"}
    assert "sig=" in hit["thumbnail_url"]
    thumb = http.get(hit["thumbnail_url"])  # no header: an <img> cannot send one; the signature admits it
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8"
    forged = hit["thumbnail_url"].replace("sig=", "sig=0")
    assert http.get(forged).status_code == 401
    other_size = hit["thumbnail_url"].replace("size=256", "size=512")  # the signature covers the size
    assert http.get(other_size).status_code == 401


def test_get_search_with_settings_in_the_url(http, photo_tree):
    post = search(http, {"text": "a red circle", "limit": 3}).json()
    get = http.get("/v1/search", params={"text": "a red circle", "limit": "3"}, headers=AUTH)
    assert get.status_code == 200 and [r["id"] for r in get.json()["results"]] == [r["id"] for r in post["results"]]
    dated = http.get("/v1/search", params={"text": "x", "limit": "50", "taken_after": "2020-01-01"}, headers=AUTH)
    assert sorted(p.rsplit("/", 1)[1] for h in dated.json()["results"] for p in h["paths"]) == ["2021.jpg", "2023.jpg"]
    more = http.get("/v1/search", params={"id": post["results"][0]["id"], "limit": "2"}, headers=AUTH).json()
    assert more["kind"] == "id" and post["results"][0]["id"] not in [r["id"] for r in more["results"]]
    bad = http.get("/v1/search", params={"text": "x", "limit": "many"}, headers=AUTH)
    assert bad.status_code == 400 and "limit" in bad.json()["error"]
    typo = http.get("/v1/search", params={"text": "x", "limt": "5"}, headers=AUTH)
    assert typo.status_code == 400 and "unknown parameter 'limt'" in typo.json()["error"]
    twice = http.get("/v1/search?text=x&limit=2&limit=3", headers=AUTH)
    assert twice.status_code == 400 and "'limit' given more than once" in twice.json()["error"]
    assert http.get("/v1/search", params={"text": "x"}).status_code == 401
    documented = http.get("/openapi.json").json()["paths"]["/v1/search"]["get"]["parameters"]
    assert {"text", "id", "limit", "taken_after", "camera"} <= {p["name"] for p in documented}


def test_image_upload_base64_and_multipart(http, photo_tree):
    path = sorted((photo_tree / "album-a").glob("*.jpg"))[5]
    data = path.read_bytes()
    by_json = search(http, {"image": base64.b64encode(data).decode(), "limit": 2}).json()
    assert str(path) in by_json["results"][0]["paths"]
    by_form = http.post("/v1/search", headers=AUTH, files={"image": ("q.jpg", data, "image/jpeg")},
                        data={"limit": "2", "filter": '{"path_prefix": "%s"}' % (photo_tree / "album-a")})
    assert by_form.status_code == 200, by_form.text
    assert by_form.json()["kind"] == "image" and str(path) in by_form.json()["results"][0]["paths"]


def test_id_query_photo_endpoint_and_filters(http, photo_tree):
    first = search(http, {"text": "a blue square", "limit": 1}).json()["results"][0]
    similar = search(http, {"id": first["id"], "limit": 5}).json()
    assert similar["kind"] == "id" and first["id"] not in [h["id"] for h in similar["results"]]
    photo = http.get(f"/v1/photos/{first['id']}", headers=AUTH).json()
    assert photo["paths"] == first["paths"] and "score" not in photo
    dated = search(http, {"text": "x", "limit": 50, "filter": {"taken_after": "2020-01-01",
                                                                "path_prefix": str(photo_tree)}}).json()
    assert sorted(p.rsplit("/", 1)[1] for h in dated["results"] for p in h["paths"]) == ["2021.jpg", "2023.jpg"]
    assert http.get("/v1/photos/00000000-0000-0000-0000-000000000000", headers=AUTH).status_code == 404


def test_keys_are_required(http):
    assert search(http, {"text": "a"}, headers={}).status_code == 401
    wrong = search(http, {"text": "a"}, headers={"Authorization": "Bearer not-the-key-at-all-000"})
    assert wrong.status_code == 401 and "invalid" in wrong.json()["error"]
    assert http.get("/metrics").status_code == 401
    assert http.get("/healthz").json()["auth"] is True  # health and the page stay open
    assert http.get("/").status_code == 200


@pytest.mark.parametrize("body, message", [
    ({"text": "a", "id": "00000000-0000-0000-0000-000000000000"}, "exactly one"),
    ({"text": "a", "limit": 1000}, "limit"),
    ({"image": base64.b64encode(b"GIF89a but not really").decode()}, "could not be used"),
    ({"image": base64.b64encode(dated_jpeg(2020, None, 3)[:200]).decode()}, "truncated|corrupt"),
    ({"vector": [1.0, 2.0]}, "vectors have"),
    ({"text": "a", "filter": {"taken_after": "yesterday"}}, "ISO"),
])
def test_malformed_requests_get_400_with_a_message(http, body, message):
    import re

    r = search(http, body)
    assert r.status_code == 400 and re.search(message, r.json()["error"]), r.text


def test_malformed_json_and_content_type(http):
    r = http.post("/v1/search", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = http.post("/v1/search", content=b"text=a", headers={**AUTH, "Content-Type": "text/plain"})
    assert r.status_code == 400
    r = http.post("/v1/search", headers=AUTH, files={"image": ("q.jpg", b"not an image", "image/jpeg")})
    assert r.status_code == 400 and "not_an_image" in r.json()["error"]


def test_oversized_uploads_get_413(http):
    big = b"\xff\xd8" + b"\0" * (MAX_UPLOAD + 10)
    r = search(http, {"image": base64.b64encode(big).decode()})
    assert r.status_code == 413
    r = http.post("/v1/search", headers=AUTH, files={"image": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 413
    huge = b"x" * (MAX_UPLOAD * 2)  # past the body limit: refused from Content-Length before it is read
    r = http.post("/v1/search", headers={**AUTH, "Content-Type": "application/json"}, content=huge)
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted as it streams in
        for _ in range(8):
            yield b"x" * (MAX_UPLOAD // 2)

    r = http.post("/v1/search", headers={**AUTH, "Content-Type": "application/json"}, content=chunks())
    assert r.status_code == 413


TRAVERSALS = ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/etc/passwd",
              "....//....//etc/passwd", "..\\..\\windows\\win.ini", "%00", "etc%2Fpasswd%00.jpg",
              "00000000-0000-0000-0000-000000000000/../../../etc/passwd", "~root", "file:///etc/passwd"]


@pytest.mark.parametrize("payload", TRAVERSALS)
def test_no_path_escape_on_photo_endpoints(http, payload):
    for url in (f"/v1/photos/{payload}", f"/v1/photos/{payload}/thumbnail"):
        r = http.get(url, headers=AUTH)
        assert r.status_code in (400, 404, 405), (url, r.status_code)
        assert b"root:" not in r.content and r.headers.get("content-type", "").startswith("application/json") \
            or r.status_code == 404


def test_docs_metrics_and_health(http):
    assert http.get("/docs").status_code == 200
    spec = http.get("/openapi.json").json()
    assert "/v1/search" in spec["paths"] and "/v1/admin/store" not in spec["paths"]
    search(http, {"text": "metrics please"})
    metrics = http.get("/metrics", headers=AUTH).text
    assert 'photoseek_requests_total{code="200",method="POST",route="/v1/search"}' in metrics
    health = http.get("/healthz").json()
    assert health["indexed"] and health["points"] > 160


def test_concurrent_clients_all_answered(http):
    def one(i):
        return search(http, {"text": f"a small green triangle {i % 4}", "limit": 3}).status_code

    with cf.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(48)))
    assert codes.count(200) == 48


def test_split_topology_answers_the_same_queries(service, tiny_model_dir, photo_tree, tmp_path):
    """The split app (ingress -> text/image encoder and searcher deployments) on its own store."""
    from ray import serve
    from servetools import index_tree

    from photoseek.serving.app import build_app
    from photoseek.serving.service import ServeRequest, app_args

    index_tree(tiny_model_dir, photo_tree, tmp_path / "store")
    req = ServeRequest(model=str(tiny_model_dir), store=str(tmp_path / "store"), topology="split")
    serve.run(build_app(vars(app_args(req, "admin-token-for-this-test"))), name="split", route_prefix="/split")
    try:
        url = f"{service.http_url}/split"
        apps = serve.status().applications["split"].deployments
        assert set(apps) == {"Ingress", "TextEncoder", "ImageEncoder", "SearcherDeployment"}
        text = httpx.post(f"{url}/v1/search", json={"text": "a red circle", "limit": 3}).json()
        assert text["kind"] == "text" and len(text["results"]) == 3
        path = sorted((photo_tree / "album-a").glob("*.jpg"))[1]
        image = httpx.post(f"{url}/v1/search", files={"image": ("q.jpg", path.read_bytes(), "image/jpeg")}).json()
        assert str(path) in image["results"][0]["paths"]
        similar = httpx.post(f"{url}/v1/search", json={"id": image["results"][0]["id"], "limit": 2}).json()
        assert similar["kind"] == "id" and len(similar["results"]) == 2
        bad = httpx.post(f"{url}/v1/search", json={"image": base64.b64encode(b"nope").decode()})
        assert bad.status_code == 400 and "not_an_image" in bad.json()["error"]
        assert httpx.get(f"{url}{text['results'][0]['thumbnail_url']}").status_code == 200
        assert httpx.get(f"{url}/v1/photos/00000000-0000-0000-0000-000000000000").status_code == 404
        _grpc_answers_this_machine_only(service.grpc_target)
    finally:
        serve.delete("split")


def _grpc_answers_this_machine_only(target: str) -> None:
    """Keys off: Serve's gRPC proxy listens on every interface, so the app itself refuses other machines."""
    import grpc
    from servetools import outside_address

    from photoseek.serving.protos import photoseek_pb2 as pb
    from photoseek.serving.protos import photoseek_pb2_grpc as pb_grpc

    port = target.rsplit(":", 1)[1]
    request, metadata = pb.SearchRequest(text="a red circle", limit=1), [("application", "split")]
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert len(pb_grpc.PhotoSeekStub(channel).Search(request, metadata=metadata).results) == 1
    address = outside_address()
    if address is None:
        return  # no network interface to come in through
    with grpc.insecure_channel(f"{address}:{port}") as channel:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.PhotoSeekStub(channel).Search(request, metadata=metadata)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "API keys are off" in err.value.details()


def test_overload_is_refused_quickly_not_queued(service, tiny_model_dir, tmp_path):
    """A second app with room for one request and one in the queue: a burst gets 503s, fast, not a hang."""
    from ray import serve

    from photoseek.serving.app import build_app
    from photoseek.serving.service import ServeRequest, app_args

    req = ServeRequest(model=str(tiny_model_dir), store=str(tmp_path / "store"), max_ongoing_requests=1,
                       max_queued_requests=1, api_keys_file=None)
    serve.run(build_app(vars(app_args(req, "admin-token-for-this-test"))), name="overload", route_prefix="/overload")
    try:
        def one(_):
            start = time.monotonic()
            r = httpx.post(f"{service.http_url}/overload/v1/search", json={"text": "a red circle"}, timeout=30)
            return r.status_code, time.monotonic() - start, r

        with cf.ThreadPoolExecutor(32) as pool:
            results = list(pool.map(one, range(64)))
        codes = [c for c, _, _ in results]
        assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) > 0, codes
        refused = [r for c, _, r in results if c == 503]
        assert "backpressure" in refused[0].text  # Serve's proxy answers before our app sees the request
        assert max(t for c, t, _ in results if c == 503) < 10  # refused, not parked until a timeout
    finally:
        serve.delete("overload")


@pytest.mark.parametrize("headers", [{"x-request-timeout-seconds": "0"}, {"x-request-timeout-seconds": "-1"},
                                     {"x-request-timeout-seconds": "3600"}, {"x-request-timeout-seconds": "soon"},
                                     {"x-request-disconnect-disabled": "?1"}])
def test_a_request_cannot_lift_the_request_timeout(http, headers):
    """Serve's proxy honours these headers (0 turns the timeout off); the app refuses them at once, so no
    caller holds a replica past the service's timeout (20 s here)."""
    r = http.post("/v1/search", json={"text": "a red circle"}, headers={**AUTH, **headers})
    assert r.status_code == 400
    assert next(iter(headers)) in r.json()["error"]
    assert http.get("/v1/search", params={"text": "x"}, headers={**AUTH, **headers}).status_code == 400


def test_a_request_may_shorten_the_timeout_and_the_timeout_reaches_serve(http):
    from ray.serve.context import _get_global_client

    r = http.post("/v1/search", json={"text": "a red circle"}, headers={**AUTH, "x-request-timeout-seconds": "5"})
    assert r.status_code == 200, r.text
    details = _get_global_client().get_serve_details()  # what the proxies were started with
    assert details["http_options"]["request_timeout_s"] == 20
    assert details["grpc_options"]["request_timeout_s"] == 20


def test_page_is_served(http):
    page = http.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert b"<html" in page.content.lower() or b"<!doctype html" in page.content.lower()
