"""Listing documents page by page (cursor, filter), and deleting in bulk by ids or filter,
answered at once or as a background job, through the HTTP API over a real appliance."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.index.base import IndexConfig
from appliance.service import Appliance
from appliance.store import documents as document_store

RECIPES = [
    {"id": f"r{n:02d}", "text": f"Recipe {n}: {dish}", "metadata": meta}
    for n, (dish, meta) in enumerate(
        [
            ("lentil soup with cumin", {"tags": ["soup", "vegan"], "year": 2020}),
            ("minestrone soup", {"tags": ["soup", "italian"], "year": 2021}),
            ("chicken broth", {"tags": "soup", "year": 2019}),
            ("margherita pizza", {"tags": ["italian"], "year": 2022}),
            ("sourdough bread", {"tags": [], "year": 2018}),
            ("green salad", {"year": 2023}),
            ("beef stew", {"tags": ["stew"], "year": 2020}),
            ("tomato soup", {"tags": ["soup", "vegan", "quick"], "year": 2024}),
        ]
    )
]


def _filter(spec: dict[str, Any]) -> str:
    return urllib.parse.quote(json.dumps(spec))


def _make_client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.create_collection("recipes", IndexConfig(backend="faiss", spec="HNSW32,Flat"))
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        stored = test_client.put("/collections/recipes/documents", json={"documents": RECIPES})
        assert stored.status_code == 200, stored.text
        yield test_client


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    yield from _make_client(appliance)


def _error(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}
    return str(body["detail"])


def _pages(client: TestClient[Any], query: str = "") -> list[list[str]]:
    pages, cursor = [], None
    while True:
        url = f"/collections/recipes/documents?limit=3{query}"
        if cursor:
            url += f"&cursor={cursor}"
        body = client.get(url).json()
        pages.append([doc["id"] for doc in body["documents"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def _listed(client: TestClient[Any]) -> list[str]:
    return [doc_id for page in _pages(client) for doc_id in page]


def _index_equals_store(appliance: Appliance, name: str) -> None:
    live = appliance.collections.peek(name)
    assert live is not None
    with appliance.db.read() as session:
        stored = document_store.vector_ids(session, live.id, live.model_id)
    assert np.array_equal(np.sort(live.index.ids()), np.sort(stored))


# -- listing ------------------------------------------------------------------------------
def test_documents_are_listed_page_by_page_in_a_stable_order(client: TestClient[Any]) -> None:
    pages = _pages(client)
    assert pages == [["r00", "r01", "r02"], ["r03", "r04", "r05"], ["r06", "r07"]]
    first = client.get("/collections/recipes/documents?limit=2").json()
    assert set(first["documents"][0]) == {
        "id",
        "text",
        "metadata",
        "content_hash",
        "created_at",
        "updated_at",
    }
    # An update keeps a document's place; a new one comes last.
    client.put(
        "/collections/recipes/documents",
        json={
            "documents": [{"id": "r01", "text": "Minestrone, revised"}, {"id": "new", "text": "x"}]
        },
    )
    assert _listed(client) == [r["id"] for r in RECIPES] + ["new"]


def test_a_page_at_the_end_has_no_next_cursor(client: TestClient[Any]) -> None:
    body = client.get("/collections/recipes/documents?limit=8").json()
    assert len(body["documents"]) == 8 and body["next_cursor"] is None
    default = client.get("/collections/recipes/documents").json()
    assert len(default["documents"]) == 8 and default["next_cursor"] is None


def test_listing_takes_the_search_filter_syntax(client: TestClient[Any]) -> None:
    soups = _pages(client, f"&filter={_filter({'tags': 'soup'})}")
    assert [doc_id for page in soups for doc_id in page] == ["r00", "r01", "r02", "r07"]
    assert soups[0] == ["r00", "r01", "r02"]  # pages of the filtered listing
    vegan = client.get(
        f"/collections/recipes/documents?filter={_filter({'tags': {'$all': ['soup', 'vegan']}})}"
    ).json()
    assert [doc["id"] for doc in vegan["documents"]] == ["r00", "r07"]
    untagged = client.get(
        f"/collections/recipes/documents?filter={_filter({'tags': {'$exists': False}})}"
    ).json()
    assert [doc["id"] for doc in untagged["documents"]] == ["r05"]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("cursor=not-a-cursor", "next_cursor of the previous page"),
        ("cursor=eyJ2IjoxLCJhZnRlciI6LTF9", "next_cursor of the previous page"),  # after: -1
        ("filter=%7Bnope", "not valid JSON"),
        ("filter=%5B1%5D", "must be a JSON object"),
        (f"filter={_filter({'year': {'$bad': 1}})}", "$bad"),
        ("limit=0", "limit"),
        ("limit=5000", "limit"),
    ],
)
def test_bad_cursor_filter_or_limit_get_400_saying_what_to_fix(
    client: TestClient[Any], query: str, needle: str
) -> None:
    assert needle in _error(client.get(f"/collections/recipes/documents?{query}"))


def test_listing_an_unknown_collection_is_404(client: TestClient[Any]) -> None:
    _error(client.get("/collections/nope/documents"), 404)


# -- deleting in bulk ---------------------------------------------------------------------
def test_delete_by_filter_answers_the_count_and_search_agrees(
    client: TestClient[Any], appliance: Appliance
) -> None:
    response = client.post(
        "/collections/recipes/documents/delete", json={"filter": {"tags": "soup"}}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"deleted": 4}
    left = _listed(client)
    assert left == ["r03", "r04", "r05", "r06"]
    hits = client.post(
        "/collections/recipes/search", json={"query": "soup", "limit": 10, "mode": "dense"}
    ).json()["results"]
    assert {hit["id"] for hit in hits} == set(left)
    _index_equals_store(appliance, "recipes")
    again = client.post("/collections/recipes/documents/delete", json={"filter": {"tags": "soup"}})
    assert again.json() == {"deleted": 0}


def test_delete_by_ids_counts_only_those_that_were_there(
    client: TestClient[Any], appliance: Appliance
) -> None:
    response = client.post(
        "/collections/recipes/documents/delete", json={"ids": ["r00", "r03", "r03", "nope"]}
    )
    assert response.json() == {"deleted": 2}
    assert client.get("/collections/recipes/documents/r03").status_code == 404
    _index_equals_store(appliance, "recipes")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "exactly one of"),
        ({"filter": {"year": 2020}, "ids": ["r00"]}, "exactly one of"),
        ({"filter": {}}, "filter"),
        ({"ids": []}, "ids"),
        ({"ids": [""]}, "ids"),
        ({"filter": {"year": {"$regex": "x"}}}, "$regex"),
        ({"filter": {"year": 2020}, "surprise": 1}, "surprise"),
    ],
)
def test_bad_bulk_deletes_get_400_and_delete_nothing(
    client: TestClient[Any], body: dict[str, Any], needle: str
) -> None:
    assert needle in _error(client.post("/collections/recipes/documents/delete", json=body))
    assert len(_listed(client)) == len(RECIPES)


def test_bulk_delete_on_an_unknown_collection_is_404(client: TestClient[Any]) -> None:
    _error(client.post("/collections/nope/documents/delete", json={"ids": ["a"]}), 404)


def test_a_document_named_delete_stays_reachable(client: TestClient[Any]) -> None:
    client.put(
        "/collections/recipes/documents", json={"documents": [{"id": "delete", "text": "odd"}]}
    )
    assert client.get("/collections/recipes/documents/delete").json()["text"] == "odd"
    assert client.delete("/collections/recipes/documents/delete").json() == {"deleted": 1}
    _error(client.get("/collections/recipes/documents/delete"), 404)


def _wait(client: TestClient[Any], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


@pytest.fixture
def job_client(open_appliance: Callable[..., Appliance]) -> Iterator[TestClient[Any]]:
    appliance = open_appliance(delete_async_threshold=2)
    appliance.jobs.batch_size = 2  # several batches, each its own commit
    appliance.jobs.start()
    try:
        yield from _make_client(appliance)
    finally:
        appliance.jobs.stop()


@pytest.mark.parametrize(
    ("body", "deleted", "left"),
    [
        ({"filter": {"tags": "soup"}}, 4, ["r03", "r04", "r05", "r06"]),
        ({"ids": ["r00", "r01", "r02", "gone"]}, 3, ["r03", "r04", "r05", "r06", "r07"]),
    ],
)
def test_over_the_threshold_a_bulk_delete_is_a_job(
    job_client: TestClient[Any], body: dict[str, Any], deleted: int, left: list[str]
) -> None:
    response = job_client.post("/collections/recipes/documents/delete", json=body)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "delete" and job["state"] == "queued"
    done = _wait(job_client, job["id"])
    assert done["state"] == "succeeded", done
    assert done["deleted"] == deleted
    assert _listed(job_client) == left
    listed = job_client.get("/jobs").json()["jobs"]
    assert listed[0]["id"] == job["id"] and listed[0]["kind"] == "delete"
    hits = job_client.post(
        "/collections/recipes/search", json={"query": "soup", "limit": 10, "mode": "hybrid"}
    ).json()["results"]
    assert {hit["id"] for hit in hits} == set(left)


def test_under_the_threshold_a_bulk_delete_answers_at_once(
    job_client: TestClient[Any],
) -> None:
    response = job_client.post(
        "/collections/recipes/documents/delete", json={"filter": {"year": 2020}}
    )
    assert response.status_code == 200 and response.json() == {"deleted": 2}


def test_listing_needs_read_scope_and_bulk_delete_write_scope() -> None:
    from appliance.api.auth import required_scope

    assert required_scope("GET", "/collections/recipes/documents") == "read"
    assert required_scope("POST", "/collections/recipes/documents/delete") == "write"
    assert required_scope("GET", "/jobs/del-0123") == "read"
