"""The HTTP API through Litestar's test client, over a real appliance."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.config import Settings
from appliance.embedding.encoder import Encoder
from appliance.service import Appliance
from tests.conftest import ANIMALS

DOCS = {"documents": [{"id": i, "text": t, "metadata": m} for i, t, m in ANIMALS]}


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.ensure_collection(appliance.settings.default_collection)
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client


def _error(response: Any, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    assert "Traceback" not in response.text
    return body


def test_health_and_readiness(client: TestClient[Any]) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_ready_is_503_until_the_model_and_indexes_are_loaded(
    settings_for: Callable[..., Settings], encoder: Encoder
) -> None:
    loaded = threading.Event()

    def slow_factory(settings: Settings) -> Appliance:
        # Held until the test has seen the not-ready answers (a sleep raced a busy box).
        loaded.wait(30)
        return Appliance(settings, encoder=encoder)

    app = create_app(settings_for())
    holder = app.state.holder
    holder._factory = slow_factory
    with TestClient(app) as test_client:
        assert test_client.get("/health").status_code == 200
        assert test_client.get("/ready").status_code == 503
        body = _error(test_client.post("/search", json={"query": "x"}), 503)
        assert body["error"] == "not_ready"
        loaded.set()
        holder.wait(10)
        assert test_client.get("/ready").status_code == 200


def test_ready_says_when_the_sample_corpus_is_still_loading(
    settings_for: Callable[..., Settings], encoder: Encoder
) -> None:
    release = threading.Event()
    loading = threading.Event()

    def factory(settings: Settings) -> Appliance:
        appliance = Appliance(settings, encoder=encoder)

        def held_sample_load() -> int:
            loading.set()
            release.wait(30)  # held until the test has read /ready
            return 0

        appliance.load_sample_if_empty = held_sample_load  # type: ignore[method-assign]
        return appliance

    app = create_app(settings_for(load_sample=True))
    holder = app.state.holder
    holder._factory = factory
    with TestClient(app) as test_client:
        assert loading.wait(30)
        during = test_client.get("/ready")
        assert during.status_code == 200  # searches are answered meanwhile
        assert "sample corpus" in during.json()["starting"]
        release.set()
        holder.wait(10)
        after = test_client.get("/ready").json()
        assert (after["status"] == "ready" and "starting" not in after) or after["starting"] is None


def test_collection_lifecycle(client: TestClient[Any]) -> None:
    created = client.post(
        "/collections", json={"name": "pets", "index": {"backend": "faiss", "spec": "Flat"}}
    )
    assert created.status_code == 201
    assert created.json()["index"]["spec"] == "Flat"
    default_index = client.post("/collections", json={"name": "hnsw"}).json()["index"]
    assert default_index["backend"] == "hnswlib"
    names = [c["name"] for c in client.get("/collections").json()["collections"]]
    assert {"pets", "hnsw", "default"} <= set(names)
    assert _error(client.post("/collections", json={"name": "pets"}), 409)["error"] == (
        "collection_exists"
    )
    assert client.delete("/collections/pets").status_code == 204
    assert _error(client.get("/collections/pets"), 404)["error"] == "collection_not_found"


def test_documents_search_upsert_delete(client: TestClient[Any]) -> None:
    client.post(
        "/collections", json={"name": "pets", "index": {"backend": "faiss", "spec": "Flat"}}
    )
    upserted = client.put("/collections/pets/documents", json=DOCS)
    assert upserted.status_code == 200 and upserted.json()["upserted"] == len(ANIMALS)
    search = client.post(
        "/collections/pets/search", json={"query": "which animal barks", "limit": 2}
    ).json()
    assert search["results"][0]["id"] == "dog"
    assert set(search["results"][0]) >= {"id", "score", "text", "metadata"}
    assert search["results"][0]["chunk"] == {"index": 0, "start": 0, "end": len(ANIMALS[1][1])}
    assert search["took_ms"] > 0
    filtered = client.post(
        "/collections/pets/search",
        json={"query": "which animal barks", "filter": {"kind": "bird"}, "timings": True},
    ).json()
    assert {hit["id"] for hit in filtered["results"]} == {"eagle", "penguin"}
    assert set(filtered["timings_ms"]) >= {"embed", "filter", "retrieve", "format"}
    document = client.get("/collections/pets/documents/dog").json()
    assert document["metadata"] == {"kind": "mammal", "legs": 4}
    assert client.delete("/collections/pets/documents/dog").json() == {"deleted": 1}
    _error(client.get("/collections/pets/documents/dog"), 404)
    after = client.post("/collections/pets/search", json={"query": "which animal barks"}).json()
    assert "dog" not in [hit["id"] for hit in after["results"]]


def test_seed_contract_search_on_the_default_collection(client: TestClient[Any]) -> None:
    client.put("/collections/default/documents", json=DOCS)
    body = client.post(
        "/search", json={"query": "fish in rivers", "limit": 3, "filters": {"legs": 0}}
    ).json()
    assert [hit["id"] for hit in body["results"]] == ["salmon"]


@pytest.mark.parametrize("path", ["/search", "/collections/default/search"])
@pytest.mark.parametrize("name", ["filter", "filters"])
def test_both_search_routes_take_filter_and_filters(
    client: TestClient[Any], path: str, name: str
) -> None:
    client.put("/collections/default/documents", json=DOCS)
    body = client.post(path, json={"query": "fish in rivers", "limit": 3, name: {"legs": 0}})
    assert body.status_code == 200, body.text
    assert [hit["id"] for hit in body.json()["results"]] == ["salmon"]
    same = {"legs": 0}
    both = client.post(path, json={"query": "fish", "filter": same, "filters": same})
    assert both.status_code == 200
    differ = client.post(path, json={"query": "fish", "filter": same, "filters": {"legs": 4}})
    assert differ.status_code == 400 and "send only one" in differ.json()["detail"]


def test_title_weight_is_a_search_request_field(client: TestClient[Any]) -> None:
    client.put("/collections/default/documents", json=DOCS)
    for weight in (0.0, 5.0):
        response = client.post(
            "/collections/default/search",
            json={"query": "fish", "mode": "keyword", "title_weight": weight},
        )
        assert response.status_code == 200, response.text
    refused = client.post("/collections/default/search", json={"query": "fish", "title_weight": -1})
    assert refused.status_code == 400 and "title_weight" in refused.text


@pytest.mark.parametrize(
    ("path", "payload", "needle"),
    [
        ("/collections/default/search", {"query": "x", "limit": 0}, "limit"),
        ("/collections/default/search", {"query": "x", "limit": 100000}, "limit"),
        ("/collections/default/search", {"query": "x", "limit": "ten"}, "limit"),
        ("/collections/default/search", {"query": ""}, "query"),
        ("/collections/default/search", {"query": "x", "filter": {"a": {"$bad": 1}}}, "$bad"),
        ("/collections/default/search", {"query": "x", "params": {"ef": -1}}, "ef"),
        ("/collections/default/search", {"query": "x", "surprise": 1}, "surprise"),
        ("/collections", {"name": "../etc"}, "name"),
        ("/collections", {"name": "x", "index": {"backend": "annoy"}}, "backend"),
        ("/collections", {"name": "x", "index": {"backend": "faiss", "spec": "Nope9"}}, "Nope9"),
    ],
)
def test_bad_requests_get_400_with_a_message(
    client: TestClient[Any], path: str, payload: dict[str, Any], needle: str
) -> None:
    body = _error(client.post(path, json=payload), 400)
    assert needle in body["detail"]


def test_bad_documents_get_400_and_change_nothing(client: TestClient[Any]) -> None:
    client.put("/collections/default/documents", json=DOCS)
    before = client.get("/collections/default").json()
    bad_batches = [
        {"documents": []},
        {"documents": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]},
        {"documents": [{"id": "a", "text": "  "}]},
        {"documents": [{"id": "a"}]},
        {"documents": [{"id": "a", "text": "x", "metadata": [1, 2]}]},
    ]
    for batch in bad_batches:
        _error(client.put("/collections/default/documents", json=batch), 400)
    _error(client.put("/collections/default/documents", content=b"{not json"), 400)
    assert client.get("/collections/default").json() == before


def test_oversized_body_is_413(settings_for: Callable[..., Settings], encoder: Encoder) -> None:
    appliance = Appliance(settings_for(max_body_bytes=10_000), encoder=encoder)
    appliance.ensure_collection("default")
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        big = {"documents": [{"id": "a", "text": "word " * 5_000}]}
        body = _error(test_client.put("/collections/default/documents", json=big), 413)
        assert body["error"] == "request_too_large"


def test_metrics_expose_search_cache_documents_and_errors(client: TestClient[Any]) -> None:
    client.put("/collections/default/documents", json=DOCS)
    client.post("/search", json={"query": "birds"})
    client.post("/search", json={"query": "birds"})
    client.get("/collections/missing")
    text = client.get("/metrics").text
    for name in (
        'search_requests_total{collection="default"}',
        "search_latency_seconds_bucket",
        "embedding_cache_hits_total",
        "embedding_cache_misses_total",
        'collection_documents{collection="default"} 6.0',
        'errors_total{type="collection_not_found"}',
    ):
        assert name in text, name


def test_openapi_schema_documents_the_routes(client: TestClient[Any]) -> None:
    schema = client.get("/schema/openapi.json").json()
    for path in ("/collections", "/collections/{name}/search", "/search", "/health", "/ready"):
        assert path in schema["paths"]
    assert client.get("/schema/swagger").status_code == 200


def test_search_modes_and_fusion_over_http(client: TestClient[Any]) -> None:
    client.put("/collections/default/documents", json=DOCS)
    for mode in ("dense", "keyword", "hybrid"):
        body = client.post(
            "/collections/default/search",
            json={"query": "dog barks mailman", "mode": mode, "limit": 3},
        ).json()
        assert body["mode"] == mode and body["results"][0]["id"] == "dog"
    weighted = client.post(
        "/collections/default/search",
        json={"query": "dog", "mode": "hybrid", "fusion": "weighted", "alpha": 0.3},
    )
    assert weighted.status_code == 200
    bad = client.post("/collections/default/search", json={"query": "x", "mode": "fuzzy"})
    assert "mode" in _error(bad, 400)["detail"]
    no_model = client.post("/collections/default/search", json={"query": "x", "rerank": True})
    assert "cross-encoder" in _error(no_model, 400)["detail"]


def test_validation_errors_say_what_to_send_instead(client: TestClient[Any]) -> None:
    mode = client.post("/collections/default/search", json={"query": "x", "mode": "semantic"})
    assert _error(mode, 400)["detail"] == "mode: 'semantic' is not one of dense, hybrid, keyword"
    backend = client.post("/collections", json={"name": "c", "index": {"backend": "annoy"}})
    assert (
        _error(backend, 400)["detail"]
        == "index.backend: 'annoy' is not one of faiss, hnswlib, milvus"
    )

    name = _error(client.post("/collections", json={"name": "my collection!"}), 400)["detail"]
    assert "regex" not in name and "[A-Za-z" not in name
    assert name.startswith("name: a collection name is 1 to 128 characters: letters, digits")

    # Both routes take `filter` and `filters`; a near miss is named.
    wrong = client.post("/collections/default/search", json={"query": "x", "filterz": {}})
    assert "unknown field 'filterz'; did you mean 'filter'?" in _error(wrong, 400)["detail"]
    other = client.post("/search", json={"query": "x", "limt": 3})
    assert "unknown field 'limt'; did you mean 'limit'?" in _error(other, 400)["detail"]
    nested = client.post("/collections/default/search", json={"query": "x", "params": {"eff": 1}})
    assert _error(nested, 400)["detail"] == (
        "params: unknown field 'eff'; did you mean 'ef'? the fields are ef, nprobe"
    )
    deep = client.put(
        "/collections/default/documents",
        json={"documents": [{"id": "a", "text": "t", "meta": {}}]},
    )
    assert (
        "documents[0]: unknown field 'meta'; did you mean 'metadata'?"
        in (_error(deep, 400)["detail"])
    )
    operator = client.post(
        "/collections/default/search", json={"query": "x", "filter": {"legs": {"$gte ": 2}}}
    )
    assert "did you mean '$gte'?" in _error(operator, 400)["detail"]
