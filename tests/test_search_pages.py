"""Search pagination (`offset`) and snippets (`highlight`), on both search routes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.index.base import IndexConfig
from appliance.search.highlight import highlight
from appliance.service import Appliance

TOPICS = ["astronomy", "cooking", "finance", "gardening", "music", "sailing", "chess", "poetry"]
DOCS = [
    {
        "id": f"d{n}",
        "text": f"Note {n} on {TOPICS[n % 8]} and {TOPICS[(n * 3) % 8]}: runners run, "
        f"the runner is running {'far' if n % 2 else 'fast'} near the {TOPICS[(n * 5) % 8]}.",
        "metadata": {"topic": TOPICS[n % 8], "n": n},
    }
    for n in range(60)
]


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.ensure_collection(appliance.settings.default_collection)
    appliance.create_collection("notes", IndexConfig(backend="faiss", spec="HNSW32,Flat"))
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        for name in ("notes", "default"):
            stored = test_client.put(f"/collections/{name}/documents", json={"documents": DOCS})
            assert stored.status_code == 200, stored.text
        yield test_client


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["results"]]


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_page_two_is_items_ten_to_nineteen_of_one_larger_search(
    client: TestClient[Any], mode: str
) -> None:
    query = {"query": "chess and music while running", "mode": mode}
    whole = _ids(client.post("/collections/notes/search", json={**query, "limit": 20}))
    assert len(whole) == 20
    pages = [
        _ids(client.post("/collections/notes/search", json={**query, "limit": 10, "offset": o}))
        for o in (0, 10)
    ]
    assert pages == [whole[:10], whole[10:]]
    filtered = {**query, "filter": {"topic": {"$in": ["chess", "music", "poetry"]}}}
    whole = _ids(client.post("/collections/notes/search", json={**filtered, "limit": 12}))
    page = _ids(
        client.post("/collections/notes/search", json={**filtered, "limit": 4, "offset": 8})
    )
    assert page == whole[8:12]


def test_the_default_search_route_pages_too(client: TestClient[Any]) -> None:
    whole = _ids(client.post("/search", json={"query": "sailing", "limit": 20}))
    page = _ids(client.post("/search", json={"query": "sailing", "limit": 10, "offset": 10}))
    assert page == whole[10:]
    past_the_end = _ids(client.post("/search", json={"query": "sailing", "offset": 900}))
    assert past_the_end == []


def test_each_page_is_cached_apart(client: TestClient[Any]) -> None:
    body = {"query": "poetry", "limit": 5}
    first = client.post("/collections/notes/search", json=body).json()
    second = client.post("/collections/notes/search", json={**body, "offset": 5}).json()
    assert not second.get("cached")
    assert {h["id"] for h in first["results"]}.isdisjoint(h["id"] for h in second["results"])
    again = client.post("/collections/notes/search", json={**body, "offset": 5}).json()
    assert again["cached"] and again["results"] == second["results"]


@pytest.mark.parametrize("path", ["/search", "/collections/notes/search"])
@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"offset": -1}, "offset"),
        ({"offset": 995, "limit": 10}, "offset + limit is 1005"),
        ({"offset": 1000}, "offset"),
        ({"offset": 2.5}, "offset"),
        ({"highlight": "maybe"}, "highlight"),
        ({"highlight": 1}, "highlight: Expected `bool`, got `int`"),
        ({"offset": "2"}, "offset: Expected `int`, got `str`"),
    ],
)
def test_offset_is_bounded_with_a_clear_400(
    client: TestClient[Any], path: str, extra: dict[str, Any], needle: str
) -> None:
    response = client.post(path, json={"query": "chess", **extra})
    assert response.status_code == 400, response.text
    assert needle in response.json()["detail"]


# -- highlight --------------------------------------------------------------------------------
def test_highlight_marks_stemmed_query_terms_in_the_best_passage(client: TestClient[Any]) -> None:
    for path in ("/search", "/collections/notes/search"):
        response = client.post(path, json={"query": "runs chess", "limit": 3, "highlight": True})
        assert response.status_code == 200, response.text
        for hit in response.json()["results"]:
            passage = hit["highlight"]
            marked = [passage["text"][start:end].lower() for start, end in passage["spans"]]
            # "runs" finds run, runners? no: Porter stems runners to "runner", runs to "run".
            assert {"run", "running"} <= set(marked), marked
            assert set(marked) <= {"run", "running", "chess"}
            assert hit["text"][passage["start"] :].startswith(passage["text"])
    plain = client.post("/collections/notes/search", json={"query": "runs chess"}).json()
    assert all("highlight" not in hit for hit in plain["results"])


def test_a_long_document_gets_the_window_where_the_terms_are_densest() -> None:
    filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20
    text = filler + "The sailors were sailing a sail boat at dawn. " + filler
    found = highlight(text, "sailing boats", passage_chars=120)
    assert len(found.text) <= 120
    assert "sailors were sailing a sail boat" in found.text
    marked = [found.text[s:e] for s, e in found.spans]
    assert marked == ["sailing", "sail", "boat"]  # Porter: sailors -> sailor, not sail
    assert text[found.start : found.start + len(found.text)] == found.text
    # Cut at word boundaries.
    assert not found.text[0].isalnum() or not text[found.start - 1].isalnum()


def test_a_passage_stays_within_the_matching_chunk() -> None:
    text = "Chess openings. " * 10 + "Gardening in spring with chess players. " * 10
    chunk = (160, 400)
    found = highlight(text, "chess", region=chunk, passage_chars=100)
    assert chunk[0] <= found.start and found.start + len(found.text) <= chunk[1]
    assert found.spans and all(found.text[s:e].lower() == "chess" for s, e in found.spans)


def test_no_matching_term_gives_the_passage_start_and_no_spans() -> None:
    found = highlight(
        "Café au lait, naïve résumé of the morning.", "CAFE resume", passage_chars=200
    )
    assert [found.text[s:e] for s, e in found.spans] == ["Café", "résumé"]  # accents folded
    none = highlight("Nothing in common here at all.", "zebra", passage_chars=12)
    assert none.spans == [] and none.text == "Nothing in"
