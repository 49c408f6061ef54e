"""Cache warming: from a list of queries (API and CLI) and, at start-up, from the most frequent
recent searches counted in SQLite."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from appliance import cli
from appliance.api.app import create_app
from appliance.cli import warm as cli_warm
from appliance.client import ApplianceClient
from appliance.ingest.pipeline import DocumentInput
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from tests.conftest import ANIMALS

DOCS = [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client


def _search(client: TestClient[Any], query: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/collections/c/search", json={"query": query, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_warm_route_fills_the_result_cache_for_later_searches(client: TestClient[Any]) -> None:
    response = client.post(
        "/collections/c/warm", json={"queries": ["which animal barks", "fish in rivers"]}
    )
    assert response.status_code == 200, response.text
    assert response.json() | {"seconds": 0} == {
        "queries": 2,
        "warmed": 2,
        "already_cached": 0,
        "failed": [],
        "seconds": 0,
    }
    # A user's search with the same query and default parameters is answered from the cache.
    first = _search(client, "which animal barks")
    assert first["results"][0]["id"] == "dog" and first["cached"] is True
    assert "cached" not in _search(client, "an unwarmed query")
    again = client.post("/collections/c/warm", json={"queries": ["fish in rivers"]}).json()
    assert again["already_cached"] == 1 and again["warmed"] == 0
    # Other parameters are another cache entry: not warmed.
    assert (
        client.post("/collections/c/warm", json={"queries": ["x"], "limit": 3}).json()["warmed"]
        == 1
    )


def test_warmed_answers_are_served_from_the_cache(appliance: Appliance) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    report = appliance.warm("c", ["a bird", "a bird"], SearchOptions())
    assert (report.warmed, report.already_cached) == (1, 1)
    assert appliance.search.search("c", "a bird").cached
    assert not appliance.search.search("c", "a spider").cached


def test_warm_route_errors_are_clear(client: TestClient[Any]) -> None:
    missing = client.post("/collections/nope/warm", json={"queries": ["x"]})
    assert missing.status_code == 404
    empty = client.post("/collections/c/warm", json={"queries": []})
    assert empty.status_code == 400 and "queries" in empty.text
    bad_filter = client.post(
        "/collections/c/warm", json={"queries": ["x"], "filter": {"$bogus": 1}}
    )
    assert bad_filter.status_code == 200
    assert len(bad_filter.json()["failed"]) == 1 and "$bogus" in bad_filter.json()["failed"][0]


def test_frequent_searches_are_counted_and_warmed_at_start_up(
    open_appliance: Callable[..., Appliance],
) -> None:
    first = open_appliance(warm_top_queries=2)
    first.create_collection("c")
    first.ingest.upsert("c", DOCS)
    for query, times in (("which animal barks", 5), ("birds", 3), ("spiders", 1)):
        for _ in range(times):
            first.search.search("c", query)
    first.search.search("c", "birds", options=SearchOptions(limit=3, mode="keyword"))
    first.close()  # flushes the counts
    frequent = first.query_log.frequent(10, within_days=1)
    assert [(q.query, q.count) for q in frequent][:2] == [("which animal barks", 5), ("birds", 3)]
    assert json.loads(frequent[0].params) == {"filter": None, "limit": 10, "mode": "hybrid"}

    restarted = open_appliance(warm_top_queries=2)
    report = restarted.warm_from_log()
    assert (report.warmed, report.failed) == (2, [])
    assert restarted.search.search("c", "which animal barks").cached
    assert restarted.search.search("c", "birds").cached
    assert not restarted.search.search("c", "spiders").cached  # not among the top 2
    # Warming itself is not counted as searches.
    restarted.query_log.flush()
    counts = {q.query: q.count for q in restarted.query_log.frequent(10, within_days=1)}
    assert counts["which animal barks"] == 6  # 5 before, 1 after the restart


def test_dropping_a_collection_drops_its_logged_searches_alone(
    open_appliance: Callable[..., Appliance], caplog: pytest.LogCaptureFixture
) -> None:
    appliance = open_appliance()
    for name in ("kept", "gone"):
        appliance.create_collection(name)
        appliance.ingest.upsert(name, DOCS)
    for _ in range(3):
        appliance.search.search("kept", "which animal barks")
    appliance.search.search("gone", "birds")
    appliance.search.search("gone", "spiders")
    appliance.collections.drop("gone")  # before the periodic flush saw its searches
    with caplog.at_level(logging.WARNING):
        assert appliance.query_log.flush() == 3
    assert "could not record the query log" not in caplog.text
    frequent = appliance.query_log.frequent(10, within_days=1)
    assert [(q.collection, q.query, q.count) for q in frequent] == [
        ("kept", "which animal barks", 3)
    ]


def test_start_up_warming_can_be_turned_off(open_appliance: Callable[..., Appliance]) -> None:
    first = open_appliance()
    first.create_collection("c")
    first.ingest.upsert("c", DOCS)
    first.search.search("c", "birds")
    first.close()
    assert open_appliance(warm_top_queries=0).warm_from_log().queries == 0


def test_cli_warm_reads_plain_and_jsonl_queries_and_posts_them(
    client: TestClient[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queries = tmp_path / "queries.jsonl"
    queries.write_text('which animal barks\n\n{"_id": "1", "text": "fish in rivers"}\n')
    sent: list[tuple[str, dict[str, Any]]] = []

    def through_test_client(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        sent.append((str(request.url), payload))
        response = client.post(request.url.path, json=payload)
        assert response.status_code == 200, response.text
        return httpx.Response(200, json=response.json())

    def open_client(url: str, api_key: str | None, *, timeout: float = 30.0) -> ApplianceClient:
        return ApplianceClient(
            url, api_key=api_key, transport=httpx.MockTransport(through_test_client)
        )

    monkeypatch.setattr(cli_warm, "open_client", open_client)
    result = CliRunner().invoke(
        cli.main, ["warm", "--collection", "c", "--queries", str(queries)], obj={}
    )
    assert result.exit_code == 0, result.output
    assert "2 queries: 2 warmed, 0 already cached, 0 failed" in result.output
    assert sent[0][0] == "http://127.0.0.1:8000/collections/c/warm"
    assert sent[0][1]["queries"] == ["which animal barks", "fish in rivers"]
    assert _search(client, "fish in rivers")["results"][0]["id"] == "salmon"


def test_cli_warm_without_a_server_says_so(tmp_path: Path) -> None:
    queries = tmp_path / "q.txt"
    queries.write_text("birds\n")
    result = CliRunner().invoke(
        cli.main,
        ["warm", "--queries", str(queries), "--url", "http://127.0.0.1:9"],
        obj={},
    )
    assert result.exit_code != 0
    assert "no appliance answered at http://127.0.0.1:9" in result.output
