"""The HTTP contract beyond single routes: the OpenAPI schema says what the server accepts
(constraints of optional fields kept, 202 job answers listed), bodies are read as strictly as
the schema, and OPTIONS names every method of a path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.service import Appliance


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.ensure_collection(appliance.settings.default_collection)
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client


@pytest.fixture
def schema(client: TestClient[Any]) -> dict[str, Any]:
    document: dict[str, Any] = client.get("/schema/openapi.json").json()
    return document


def test_optional_fields_keep_their_bounds_in_the_schema(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    title_weight = components["SearchRequest"]["properties"]["title_weight"]
    assert {"type": "number", "minimum": 0.0, "maximum": 100.0} in title_weight["anyOf"]
    offset = components["SearchRequest"]["properties"]["offset"]
    assert offset["minimum"] == 0 and offset["maximum"] == 999
    assert components["DefaultSearchRequest"]["properties"]["highlight"]["type"] == "boolean"
    queries = components["WarmIn"]["properties"]["queries"]
    assert queries["items"]["minLength"] == 1


def test_the_bulk_delete_schema_asks_for_exactly_one_of_filter_and_ids(
    schema: dict[str, Any],
) -> None:
    body = schema["components"]["schemas"]["DeleteDocuments"]
    assert body["oneOf"] == [{"required": ["filter"]}, {"required": ["ids"]}]
    assert body["properties"]["filter"]["minProperties"] == 1
    assert body["properties"]["ids"]["items"]["minLength"] == 1
    assert body["additionalProperties"] is False
    operation = schema["paths"]["/collections/{name}/documents/delete"]["post"]
    assert {"200", "202", "400", "404"} <= set(operation["responses"])
    upsert = schema["paths"]["/collections/{name}/documents"]["put"]
    assert "202" in upsert["responses"]
    listing = schema["paths"]["/collections/{name}/documents"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"limit", "cursor", "filter"}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"query": "x", "timings": 0}, "timings: Expected `bool`, got `int`"),
        ({"query": "x", "highlight": 1}, "highlight: Expected `bool`, got `int`"),
        ({"query": "x", "limit": "5"}, "limit: Expected `int`, got `str`"),
        ({"query": "x", "params": {"ef": "64"}}, "params.ef: Expected `int | null`, got `str`"),
    ],
)
def test_bodies_are_read_as_strictly_as_the_schema(
    client: TestClient[Any], body: dict[str, Any], needle: str
) -> None:
    response = client.post("/collections/default/search", json=body)
    assert response.status_code == 400, response.text
    assert needle in response.json()["detail"]


def test_lenient_and_strict_readings_agree_on_good_bodies(client: TestClient[Any]) -> None:
    response = client.post(
        "/collections/default/search",
        json={"query": "x", "alpha": 1, "limit": 3.0, "timings": True},
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("path", "methods"),
    [
        ("/collections", "GET, OPTIONS, POST"),
        ("/collections/default", "DELETE, GET, OPTIONS, PATCH"),
        ("/collections/default/documents", "GET, OPTIONS, PUT"),
        ("/collections/default/documents/some-id", "DELETE, GET, OPTIONS"),
        # POST bulk-deletes; the hidden GET and DELETE of a document whose id is "delete" answer
        # but are not advertised (they are not in the schema).
        ("/collections/default/documents/delete", "OPTIONS, POST"),
    ],
)
def test_options_names_every_method_of_the_path(
    client: TestClient[Any], path: str, methods: str
) -> None:
    response = client.options(path)
    assert response.status_code == 204
    assert response.headers["allow"] == methods


def test_a_method_not_allowed_names_the_allowed_ones(client: TestClient[Any]) -> None:
    response = client.patch("/collections/default/documents/some-id")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"DELETE", "GET", "OPTIONS"}


def test_the_search_request_carries_every_search_option() -> None:
    """Routes build SearchOptions from the request by field name: a new option must be on
    the request type too, or it could never be set over HTTP."""
    import dataclasses

    from appliance.api.schemas import SearchRequest
    from appliance.search.pipeline import SearchOptions

    missing = {field.name for field in dataclasses.fields(SearchOptions)} - set(
        SearchRequest.__struct_fields__
    )
    assert not missing, f"SearchOptions fields the API cannot set: {sorted(missing)}"
