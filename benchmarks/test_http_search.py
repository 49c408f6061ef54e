"""End-to-end search through the HTTP API (Litestar test client) against its parts measured
raw in the same run: query embedding (`SentenceTransformer.encode`) + ANN (raw hnswlib on the
same index) + an empty Litestar route. Targets: p50 <= 1.2x that baseline; a cached query
<= 1.5 ms p50."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, post
from litestar.params import JSONBody
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.config import Settings
from appliance.embedding.encoder import Encoder
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from benchmarks.http_baseline import fresh_queries, raw_search

DOCUMENTS = 300
ROUNDS = 40


@post("/empty", status_code=200, sync_to_thread=False)
def empty_route(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    return {}


@pytest.fixture(scope="module")
def served(
    encoder: Encoder, sample_documents: list[DocumentInput], tmp_path_factory: Any
) -> Iterator[tuple[Appliance, TestClient[Any], TestClient[Any]]]:
    from pathlib import Path

    from appliance.config import load_settings

    settings: Settings = load_settings(
        Path("/nonexistent.toml"),
        data_dir=str(tmp_path_factory.mktemp("http")),
        load_sample=False,
    )
    appliance = Appliance(settings, encoder=encoder)
    appliance.ensure_collection(settings.default_collection)
    for start in range(0, DOCUMENTS, 100):
        appliance.ingest.upsert(settings.default_collection, sample_documents[start : start + 100])
    with (
        TestClient(create_app(settings, appliance)) as client,
        TestClient(Litestar(route_handlers=[empty_route])) as empty,
    ):
        yield appliance, client, empty
    appliance.db.close()


@pytest.mark.parametrize("role", ["baseline", "appliance"])
def test_search_fresh_query(
    benchmark: Any,
    report: Any,
    served: tuple[Appliance, Any, Any],
    sample_documents: list[DocumentInput],
    role: str,
) -> None:
    appliance, client, empty = served
    benchmark.group = "search, fresh query (one request per round)"
    if role == "appliance":

        def run(query: str) -> None:
            response = client.post("/search", json={"query": query, "limit": 10})
            assert response.status_code == 200
    else:
        run = raw_search(appliance, empty)

    benchmark.pedantic(run, setup=fresh_queries(sample_documents), rounds=ROUNDS, warmup_rounds=3)
    report.pair(benchmark, "HTTP search p50 (fresh query)", role, kind="latency", target=1.2)


def test_search_cached_query(
    benchmark: Any, report: Any, served: tuple[Appliance, Any, Any]
) -> None:
    _, client, _ = served
    body = {"query": "parse a JSON document", "limit": 10}

    def run() -> None:
        assert client.post("/search", json=body).status_code == 200

    benchmark.group = "search, cached query"
    benchmark.pedantic(run, rounds=ROUNDS * 2, warmup_rounds=3)
    report.absolute(benchmark, "HTTP search p50 (cached query)", budget_s=0.0015)
    report.pair(
        benchmark, "HTTP cached query vs empty route", "appliance", kind="latency", target=None
    )


def test_empty_route(benchmark: Any, report: Any, served: tuple[Appliance, Any, Any]) -> None:
    _, _, empty = served
    benchmark.group = "search, cached query"
    benchmark.pedantic(
        lambda: empty.post("/empty", json={"query": "x", "limit": 10}),
        rounds=ROUNDS * 2,
        warmup_rounds=3,
    )
    report.pair(
        benchmark, "HTTP cached query vs empty route", "baseline", kind="latency", target=None
    )
