"""gRPC end to end through Serve's gRPC proxy, with the client generated from the repo's .proto."""

from __future__ import annotations

import json

import grpc
import pytest
from servetools import API_KEY, MAX_UPLOAD

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def stub(service):
    from photoseek.serving.protos import photoseek_pb2_grpc as pb_grpc

    with grpc.insecure_channel(service.grpc_target) as channel:
        yield pb_grpc.PhotoSeekStub(channel)


def md(key: str | None = API_KEY):
    out = [("application", "photoseek")]
    return out + [("authorization", f"Bearer {key}")] if key else out


def test_health(stub):
    from photoseek.serving.protos import photoseek_pb2 as pb

    reply = stub.Health(pb.HealthRequest(), metadata=md())
    assert reply.status == "ok" and reply.indexed and reply.points > 160


def test_search_by_text_image_id_and_vector(stub, photo_tree):
    from photoseek.serving.protos import photoseek_pb2 as pb

    text = stub.Search(pb.SearchRequest(text="a large red circle on the left", limit=3), metadata=md())
    assert text.kind == "text" and len(text.results) == 3
    assert json.loads(text.results[0].payload_json)["sha256"]
    path = sorted((photo_tree / "album-b").glob("*.jpg"))[2]
    image = stub.Search(pb.SearchRequest(image=path.read_bytes(), limit=1), metadata=md())
    assert image.kind == "image" and str(path) in image.results[0].paths
    more = stub.Search(pb.SearchRequest(id=image.results[0].id, limit=4), metadata=md())
    assert more.kind == "id" and image.results[0].id not in [h.id for h in more.results]
    vector = [0.0] * stub.Health(pb.HealthRequest(), metadata=md()).dim
    vector[0] = 1.0
    by_vector = stub.Search(pb.SearchRequest(vector=pb.Vector(values=vector), limit=2), metadata=md())
    assert by_vector.kind == "vector" and len(by_vector.results) == 2


def test_filters_over_grpc(stub, photo_tree):
    from photoseek.serving.protos import photoseek_pb2 as pb

    request = pb.SearchRequest(text="x", limit=50, filter=pb.Filter(
        taken_after="2020-01-01", fields=[pb.FieldCondition(key="camera", match_string="Nikon Z 6")]))
    reply = stub.Search(request, metadata=md())
    assert [p.rsplit("/", 1)[1] for h in reply.results for p in h.paths] == ["2023.jpg"]
    pngs = stub.Search(pb.SearchRequest(text="x", limit=50, filter=pb.Filter(formats=["PNG"])), metadata=md())
    assert len(pngs.results) == 1


@pytest.mark.parametrize("key", [None, "wrong-key-but-long-enough"])
def test_key_required(stub, key):
    from photoseek.serving.protos import photoseek_pb2 as pb

    with pytest.raises(grpc.RpcError) as err:
        stub.Search(pb.SearchRequest(text="a"), metadata=md(key))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_bad_requests(stub):
    from photoseek.serving.protos import photoseek_pb2 as pb

    cases = [
        (pb.SearchRequest(), grpc.StatusCode.INVALID_ARGUMENT, "one of"),
        (pb.SearchRequest(id="../../etc/passwd"), grpc.StatusCode.INVALID_ARGUMENT, "UUID"),
        (pb.SearchRequest(image=b"not an image"), grpc.StatusCode.INVALID_ARGUMENT, "not_an_image"),
        (pb.SearchRequest(text="a", limit=500), grpc.StatusCode.INVALID_ARGUMENT, "limit"),
        (pb.SearchRequest(vector=pb.Vector(values=[1.0, 2.0])), grpc.StatusCode.INVALID_ARGUMENT, "vectors have"),
        (pb.SearchRequest(id="00000000-0000-0000-0000-000000000000"), grpc.StatusCode.NOT_FOUND, "no photo"),
        (pb.SearchRequest(image=b"\xff\xd8" + b"\0" * MAX_UPLOAD), grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
    ]
    for request, code, message in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.Search(request, metadata=md())
        assert err.value.code() == code and message in err.value.details(), (request, err.value.details())


def test_grpc_calls_show_in_the_http_metrics(stub, service):
    """One registry per ingress replica: /metrics counts gRPC calls by method and status beside HTTP's."""
    import httpx

    from photoseek.serving.protos import photoseek_pb2 as pb

    stub.Search(pb.SearchRequest(text="counted", limit=1), metadata=md())
    with pytest.raises(grpc.RpcError):
        stub.Search(pb.SearchRequest(text="counted", limit=1), metadata=md("wrong-key-0123456789"))
    metrics = httpx.get(f"{service.http_url}/metrics", headers={"Authorization": f"Bearer {API_KEY}"}).text
    assert 'photoseek_grpc_requests_total{code="OK",method="Search"}' in metrics
    assert 'photoseek_grpc_requests_total{code="UNAUTHENTICATED",method="Search"}' in metrics
    assert 'photoseek_text_batch_size_count{path="alone"}' in metrics
