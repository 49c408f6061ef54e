"""Result cache (never stale after a write) and relevance feedback with its evaluation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from appliance.api.app import create_app
from appliance.cli import main
from appliance.errors import QueryNotFound
from appliance.ingest.pipeline import DocumentInput
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from tests.conftest import ANIMALS

DOCS = [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]


def test_repeated_search_is_served_from_the_cache(appliance: Appliance) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    first = appliance.search.search("c", "which animal barks")
    again = appliance.search.search("c", "  which   animal barks ")  # same once normalised
    assert not first.cached and again.cached
    assert [h.id for h in again.results] == [h.id for h in first.results]
    assert again.query_id != first.query_id
    assert (appliance.search.result_cache.hits, appliance.search.result_cache.misses) == (1, 1)
    other = appliance.search.search("c", "which animal barks", options=SearchOptions(limit=2))
    assert not other.cached  # every parameter is part of the key


def test_a_write_never_leaves_a_stale_cached_result(appliance: Appliance) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    assert appliance.search.search("c", "which animal barks").results[0].id == "dog"
    appliance.ingest.delete("c", ["dog"])
    after_delete = appliance.search.search("c", "which animal barks")
    assert not after_delete.cached and "dog" not in [h.id for h in after_delete.results]
    appliance.ingest.upsert("c", [DocumentInput(id="wolf", text="A wolf barks and howls.")])
    assert appliance.search.search("c", "which animal barks").results[0].id == "wolf"


def test_writes_by_another_process_invalidate_the_cache(
    open_appliance: Any,
) -> None:
    server = open_appliance()
    server.create_collection("c")
    server.ingest.upsert("c", DOCS)
    assert server.search.search("c", "which animal barks").results[0].id == "dog"
    open_appliance().ingest.delete("c", ["dog"])  # like `appliance ingest` beside the server
    assert "dog" not in [h.id for h in server.search.search("c", "which animal barks").results]


def test_cache_can_be_disabled(open_appliance: Any) -> None:
    appliance = open_appliance(result_cache_size=0)
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    appliance.search.search("c", "dog")
    assert not appliance.search.search("c", "dog").cached


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.ensure_collection("default")
    appliance.ingest.upsert("default", DOCS)
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client


def test_feedback_is_recorded_measured_and_evaluated(
    client: TestClient[Any], appliance: Appliance
) -> None:
    # The Prometheus registry is the process's: count from what earlier tests left in it.
    before = REGISTRY.get_sample_value("search_feedback_relevance_count", {"collection": "default"})
    search = client.post("/search", json={"query": "which animal barks", "limit": 3}).json()
    query_id = search["query_id"]
    top = search["results"][0]["id"]
    posted = client.post(
        "/collections/default/feedback",
        json={"query_id": query_id, "doc_id": top, "relevance": 2},
    )
    assert posted.status_code == 201
    second = client.post("/search", json={"query": "birds in the cold", "limit": 3}).json()
    client.post(
        "/collections/default/feedback",
        json={"query_id": second["query_id"], "doc_id": second["results"][1]["id"], "relevance": 1},
    )
    metrics = client.get("/metrics").text
    counted = f'search_feedback_relevance_count{{collection="default"}} {(before or 0) + 2.0}'
    assert counted in metrics
    assert "result_cache_misses_total" in metrics
    result = CliRunner().invoke(
        main, ["eval", "--feedback", "default", "--data-dir", appliance.settings.data_dir]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # Query 1: relevant doc at rank 1 (MRR 1); query 2: at rank 2 (MRR 1/2).
    assert report["queries"] == 2 and report["mrr@10"] == pytest.approx(0.75)
    assert report["ndcg@10"] == pytest.approx((1.0 + 1 / 1.5849625007211563) / 2, abs=1e-4)


def test_feedback_on_unknown_query_or_document_is_refused(
    client: TestClient[Any], appliance: Appliance
) -> None:
    unknown = client.post(
        "/collections/default/feedback", json={"query_id": "nope", "doc_id": "dog", "relevance": 1}
    )
    assert unknown.status_code == 400 and unknown.json()["error"] == "query_not_found"
    query_id = client.post("/search", json={"query": "dog"}).json()["query_id"]
    missing_doc = client.post(
        "/collections/default/feedback",
        json={"query_id": query_id, "doc_id": "unicorn", "relevance": 1},
    )
    assert missing_doc.status_code == 404
    bad = client.post(
        "/collections/default/feedback",
        json={"query_id": query_id, "doc_id": "dog", "relevance": 7},
    )
    assert bad.status_code == 400
    with pytest.raises(QueryNotFound):
        appliance.record_feedback("other", query_id, "dog", 1)


def test_a_search_over_http_counts_one_miss_then_one_hit(
    client: TestClient[Any], appliance: Appliance
) -> None:
    """The HTTP path peeks at the cache on the event loop before searching in a worker; the
    peek must not count a second miss."""
    cache = appliance.search.result_cache
    before = (cache.hits, cache.misses)
    client.post("/search", json={"query": "which animal barks", "limit": 3})
    assert (cache.hits - before[0], cache.misses - before[1]) == (0, 1)
    client.post("/search", json={"query": "which animal barks", "limit": 3})
    assert (cache.hits - before[0], cache.misses - before[1]) == (1, 1)
