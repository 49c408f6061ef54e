"""`appliance.client` against a real `appliance serve` on loopback, with an admin key, as a
user's program talks to it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from appliance.api.schemas import JobOut, UpsertResult
from appliance.client import (
    ApplianceAPIError,
    ApplianceClient,
    ApplianceUnavailable,
    EmbeddingsResult,
)
from tests.live_server import LIVE_KEY as KEY
from tests.live_server import free_port


@pytest.fixture
def server_url(live_server_url: str) -> str:
    return live_server_url


@pytest.fixture
def client(server_url: str) -> Iterator[ApplianceClient]:
    with ApplianceClient(server_url, api_key=KEY) as opened:
        yield opened


@pytest.fixture
def collection(client: ApplianceClient, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"c-{request.node.name.replace('_', '-')}"[:100]
    client.create_collection(name)
    yield name
    client.delete_collection(name)


def test_ready_and_health(client: ApplianceClient) -> None:
    readiness = client.ready()
    assert readiness.status == "ready"
    assert readiness.model is not None and readiness.model.startswith("all-MiniLM-L6-v2@")
    assert client.health().status == "ok"


def test_the_api_key_goes_as_a_bearer_token(server_url: str) -> None:
    anonymous = ApplianceClient(server_url)
    with pytest.raises(ApplianceAPIError) as missing:
        anonymous.list_collections()
    assert missing.value.status_code == 401
    assert missing.value.error == "unauthorized"
    assert "Bearer" in missing.value.detail
    wrong = ApplianceClient(server_url, api_key="not-the-key")
    with pytest.raises(ApplianceAPIError, match="unknown or revoked"):
        wrong.list_collections()


def test_collection_lifecycle(client: ApplianceClient) -> None:
    created = client.create_collection("lifecycle", index={"backend": "faiss", "spec": "Flat"})
    assert (created.name, created.documents, created.index["spec"]) == ("lifecycle", 0, "Flat")
    assert client.get_collection("lifecycle").index["backend"] == "faiss"
    assert "lifecycle" in [info.name for info in client.list_collections()]
    with pytest.raises(ApplianceAPIError) as exists:
        client.create_collection("lifecycle")
    assert (exists.value.status_code, exists.value.error) == (409, "collection_exists")
    client.delete_collection("lifecycle")
    with pytest.raises(ApplianceAPIError) as gone:
        client.get_collection("lifecycle")
    assert (gone.value.status_code, gone.value.error) == (404, "collection_not_found")
    assert "lifecycle" in gone.value.detail


def test_documents_upsert_get_delete(client: ApplianceClient, collection: str) -> None:
    odd_id = "a doc?#é"  # quoted into one path segment
    documents: list[dict[str, Any]] = [
        {"id": odd_id, "text": "the cat sleeps on the mat", "metadata": {"kind": "cat"}},
        {"id": "2", "text": "a dog barks"},
    ]
    assert client.upsert_documents(collection, documents) == UpsertResult(
        upserted=2, embedded=2, unchanged=0
    )
    again = client.upsert_documents(collection, documents)
    assert isinstance(again, UpsertResult) and again.unchanged == 2
    stored = client.get_document(collection, odd_id)
    assert (stored.id, stored.text, stored.metadata) == (
        odd_id,
        "the cat sleeps on the mat",
        {"kind": "cat"},
    )
    assert client.get_document(collection, "2").metadata == {}
    assert client.delete_document(collection, odd_id) == 1
    with pytest.raises(ApplianceAPIError) as missing:
        client.get_document(collection, odd_id)
    assert (missing.value.status_code, missing.value.error) == (404, "document_not_found")
    with pytest.raises(ApplianceAPIError, match="document_not_found"):
        client.delete_document(collection, odd_id)


def test_search_with_mode_filter_and_timings(client: ApplianceClient, collection: str) -> None:
    client.upsert_documents(
        collection,
        [
            {"id": "cat", "text": "The cat purrs on the sofa.", "metadata": {"legs": 4}},
            {"id": "eagle", "text": "The eagle soars over peaks.", "metadata": {"legs": 2}},
            {"id": "snake", "text": "A snake slides in the grass.", "metadata": {"legs": 0}},
        ],
    )
    dense = client.search(collection, "a kitten purring", limit=3, mode="dense", timings=True)
    assert dense.mode == "dense"
    assert dense.results[0].id == "cat"
    assert len(dense.results) == 3
    assert dense.timings_ms
    scores = [hit.score for hit in dense.results]
    assert scores == sorted(scores, reverse=True)
    filtered = client.search(collection, "a kitten purring", filter={"legs": {"$lt": 4}})
    assert {hit.id for hit in filtered.results} == {"eagle", "snake"}
    keyword = client.search(collection, "eagle", mode="keyword", limit=1)
    assert [hit.id for hit in keyword.results] == ["eagle"]
    with pytest.raises(ApplianceAPIError) as bad:
        client.search(collection, "x", filter={"legs": {"$near": 1}})
    assert bad.value.status_code == 400
    with pytest.raises(ApplianceAPIError) as bad_limit:
        client.search(collection, "x", limit=0)
    assert (bad_limit.value.error, bad_limit.value.detail) == (
        "invalid_request",
        "limit: Expected `int` >= 1",
    )


def test_a_background_upsert_answers_with_its_job(client: ApplianceClient, collection: str) -> None:
    job = client.upsert_documents(collection, [{"id": "j", "text": "queued text"}], run_async=True)
    assert isinstance(job, JobOut) and job.total == 1
    finished = client.wait_for_job(job.id, timeout=60)
    assert (finished.state, finished.done) == ("succeeded", 1)
    assert client.get_document(collection, "j").text == "queued text"
    with pytest.raises(ApplianceAPIError, match="job_not_found"):
        client.get_job("no-such-job")


def test_an_unreachable_server_raises_unavailable() -> None:
    client = ApplianceClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(ApplianceUnavailable, match="cannot reach"):
        client.health()


def _recording(answer: httpx.Response, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    return httpx.MockTransport(handle)


def test_embed_speaks_the_openai_contract() -> None:
    # /v1/embeddings is another branch's route; this pins the request and answer shapes.
    seen: list[httpx.Request] = []
    answer = httpx.Response(
        200,
        json={
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
                {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]},
            ],
            "model": "all-MiniLM-L6-v2",
            "usage": {"prompt_tokens": 4, "total_tokens": 4},
        },
    )
    with ApplianceClient(
        "http://appliance.test", api_key="k", transport=_recording(answer, seen)
    ) as client:
        result = client.embed(["first", "second"], model="all-MiniLM-L6-v2")
    assert isinstance(result, EmbeddingsResult)
    assert result.vectors() == [[1.0, 0.0], [0.0, 1.0]]
    assert result.usage["total_tokens"] == 4
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/v1/embeddings")
    assert request.headers["authorization"] == "Bearer k"
    assert json.loads(request.content) == {
        "input": ["first", "second"],
        "model": "all-MiniLM-L6-v2",
        "encoding_format": "float",
    }


def test_errors_in_openai_shape_and_non_json_errors_are_typed() -> None:
    openai_error = httpx.Response(
        404, json={"error": {"message": "model 'x' is not registered", "code": "model_not_found"}}
    )
    client = ApplianceClient("http://appliance.test", transport=_recording(openai_error, []))
    with pytest.raises(ApplianceAPIError) as caught:
        client.embed("hello", model="x")
    assert (caught.value.status_code, caught.value.error) == (404, "model_not_found")
    assert caught.value.detail == "model 'x' is not registered"
    proxy_error = httpx.Response(502, text="<html>Bad Gateway</html>")
    client = ApplianceClient("http://appliance.test", transport=_recording(proxy_error, []))
    with pytest.raises(ApplianceAPIError) as caught:
        client.health()
    assert (caught.value.status_code, caught.value.error) == (502, "http_error")
    assert "Bad Gateway" in caught.value.detail
