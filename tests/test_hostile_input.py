"""Hostile input: schemathesis over the OpenAPI schema, and targeted attacks. Every one gets a
4xx with a message that says what to fix, never a 5xx, and the store is left unchanged."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.config import load_settings
from appliance.embedding.encoder import Encoder
from appliance.errors import ModelNotFound
from appliance.models.registry import ModelRegistry
from appliance.service import Appliance

DOCS = {
    "documents": [
        {"id": "cat", "text": "The cat purrs on the windowsill.", "metadata": {"kind": "mammal"}},
        {"id": "owl", "text": "An owl hoots in the night.", "metadata": {"kind": "bird"}},
    ]
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Iterator[TestClient[Any]]:
    """One appliance for the module: every test here leaves the store as it found it."""
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    settings = load_settings(Path("/nonexistent.toml"), data_dir=str(data_dir), load_sample=False)
    appliance = Appliance(settings, encoder=encoder)
    appliance.ensure_collection("default")
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        assert test_client.put("/collections/default/documents", json=DOCS).status_code == 200
        yield test_client
    appliance.db.close()


def _store(client: TestClient[Any]) -> Any:
    """Everything a write could change, as the API shows it."""
    collections = client.get("/collections").json()["collections"]
    docs = {d: client.get(f"/collections/default/documents/{d}").json() for d in ("cat", "owl")}
    return collections, docs


def _refused(response: Any, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and len(body["detail"]) > 10
    assert "Traceback" not in response.text
    return str(body["detail"])


def _search(client: TestClient[Any], body: Any) -> Any:
    return client.post("/collections/default/search", json=body)


def _nested(depth: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"kind": "bird"}
    for _ in range(depth):
        spec = {"$and": [spec]}
    return spec


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"query": "x", "limit": 10**12}, "limit"),
        ({"query": "x", "limit": -1}, "limit"),
        ({"query": "x", "limit": 1.5}, "limit"),
        ({"query": "x", "limit": None}, "limit"),
        ({"query": ["x"]}, "query"),
        ({"query": {"$ne": ""}}, "query"),
        ({"query": "x" * 20_000}, "query"),
        ({"query": "\x00\x01\x02\u200b"}, "query"),
        ({"query": "x", "params": {"ef": 10**9}}, "ef"),
        ({"query": "x", "params": {"nprobe": "all"}}, "nprobe"),
        ({"query": "x", "filter": _nested(50)}, "nested deeper"),
        ({"query": "x", "filter": {f"k{i}": i for i in range(1000)}}, "conditions"),
        ({"query": "x", "filter": {"k": {"$in": list(range(5000))}}}, "values"),
        ({"query": "x", "filter": {"kind') OR 1=1 --": "x"}}, "not a valid metadata key"),
        ({"query": "x", "filter": {"kind\"]'); DROP TABLE documents; --": 1}}, "metadata key"),
        ({"query": "x", "filter": {"$where": "sleep(1)"}}, "$where"),
        ({"query": "x", "filter": {"kind": {"$regex": ".*"}}}, "$regex"),
        ({"query": "x", "filter": {"kind": {"$gt": [1]}}}, "kind"),
        ({"query": "x", "filter": "kind = 'bird'"}, "filter"),
    ],
)
def test_bad_search_parameters_get_400_with_a_message(
    client: TestClient[Any], body: Any, needle: str
) -> None:
    assert needle in _refused(_search(client, body))


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused(client: TestClient[Any], literal: str) -> None:
    for raw in (
        f'{{"query": "x", "limit": {literal}}}',
        f'{{"query": "x", "filter": {{"year": {{"$gt": {literal}}}}}}}',
        f'{{"documents": [{{"id": "n", "text": "t", "metadata": {{"v": {literal}}}}}]}}',
    ):
        path = "/collections/default/documents" if "documents" in raw else "/search"
        method = client.put if "documents" in raw else client.post
        before = _store(client)
        response = method(path, content=raw, headers={"Content-Type": "application/json"})
        _refused(response)
        assert _store(client) == before


def test_invalid_utf8_and_garbage_bodies_are_refused(client: TestClient[Any]) -> None:
    before = _store(client)
    for raw in (
        b'{"query": "\xff\xfe"}',
        b'{"documents": [{"id": "\xc3\x28", "text": "x"}]}',
        b"\x00\x01\x02",
        b'{"query": "x"',
        b"[]",
        b"null",
        b'"just a string"',
    ):
        for method, path in ((client.post, "/search"), (client.put, "/collections/x/documents")):
            response = method(path, content=raw, headers={"Content-Type": "application/json"})
            assert response.status_code in (400, 404), (raw, response.text)
            _refused(response, response.status_code)
    assert _store(client) == before


@pytest.mark.parametrize(
    ("batch", "needle"),
    [
        ({"documents": []}, "documents"),
        ({"documents": [{"id": "a", "text": ""}]}, "empty"),
        ({"documents": [{"id": "a", "text": " \n\t "}]}, "empty"),
        ({"documents": [{"id": "d", "text": "x"}, {"id": "d", "text": "y"}]}, "twice"),
        ({"documents": [{"id": "", "text": "x"}]}, "id"),
        ({"documents": [{"id": "a" * 600, "text": "x"}]}, "id"),
        ({"documents": [{"id": "a", "text": "nul \x00 inside"}]}, "NUL"),
        ({"documents": [{"id": "a", "text": 5}]}, "text"),
        ({"documents": [{"id": 5, "text": "x"}]}, "id"),
        ({"documents": [{"id": "a", "text": "x", "metadata": "m"}]}, "metadata"),
        ({"documents": [{"id": "a", "text": "x", "metadata": _nested(20)}]}, "nested"),
        ({"documents": [{"id": "a", "text": "x", "extra": 1}]}, "extra"),
        # Over the API's cap (larger batches below it become background jobs).
        ({"documents": [{"id": f"d{i}", "text": "x"} for i in range(2_001)]}, "2000"),
    ],
)
def test_bad_batches_are_refused_and_change_nothing(
    client: TestClient[Any], batch: Any, needle: str
) -> None:
    before = _store(client)
    # A good document first: a refused batch must not half-apply.
    if isinstance(batch["documents"], list) and batch["documents"]:
        batch = {"documents": [{"id": "good", "text": "fine text"}, *batch["documents"]]}
    assert needle in _refused(client.put("/collections/default/documents", json=batch))
    assert _store(client) == before
    assert client.get("/collections/default/documents/good").status_code == 404


def test_oversized_body_is_413_before_it_is_read(
    open_appliance: Any,
) -> None:
    appliance = open_appliance(max_body_bytes=50_000)
    appliance.ensure_collection("default")
    with TestClient(create_app(appliance.settings, appliance)) as client:
        huge_filter = {"query": "x", "filter": {"k": {"$in": ["v" * 100] * 1000}}}
        detail = _refused(client.post("/search", json=huge_filter), 413)
        assert "smaller" in detail
        big = {"documents": [{"id": "a", "text": "word " * 20_000}]}
        _refused(client.put("/collections/default/documents", json=big), 413)
        assert client.get("/collections/default").json()["documents"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/collections/..%2F..%2Fetc%2Fpasswd",
        "/collections/%2e%2e/documents/x",
        "/collections/default/documents/..%2F..%2Fappliance.sqlite3",
        "/collections/default%00/documents/x",
    ],
)
def test_path_traversal_in_urls_finds_nothing(client: TestClient[Any], path: str) -> None:
    response = client.get(path)
    assert response.status_code in (400, 404), response.text
    _refused(response, response.status_code)


def test_path_traversal_names_are_refused_for_collections(client: TestClient[Any]) -> None:
    before = _store(client)
    for name in ("../etc", "a/b", "..", ".hidden", "x\x00y", "a" * 200):
        assert "name" in _refused(client.post("/collections", json={"name": name}))
    assert _store(client) == before


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc", "models/../../", "~root"])
def test_path_traversal_in_model_names_is_refused(name: str) -> None:
    with pytest.raises(ModelNotFound):
        ModelRegistry().resolve(name)


def test_control_characters_in_queries_are_stripped_not_fatal(client: TestClient[Any]) -> None:
    response = _search(client, {"query": "\x1b[31mcat\x07\u202e purrs\r\n", "limit": 1})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["id"] == "cat"


# -- schemathesis ---------------------------------------------------------------------------


@dataclass
class FuzzReport:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def fuzz(app: Litestar, examples_per_operation: int) -> FuzzReport:
    """Generated requests, schema-valid and schema-invalid, for every operation; each response
    is checked against the schema (status, content type, body) and must not be a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.specs.openapi.checks import (
        negative_data_rejection,
        positive_data_acceptance,
    )

    report = FuzzReport()
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=examples_per_operation,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                response = case.call()
                report.cases += 1
                report.statuses[response.status_code] += 1
                try:
                    # Excluded: "schema-valid data must be accepted". The schema cannot say
                    # everything (a filter's grammar, a text that is only whitespace, a query
                    # of control characters); those get a 400 that says what to fix.
                    excluded = [positive_data_acceptance]
                    if response.status_code == 413:
                        # Too large is a refusal too; schemathesis only counts 4xx it lists.
                        excluded.append(negative_data_rejection)
                    case.validate_response(response, excluded_checks=excluded)
                except BaseException as exc:  # schemathesis raises an ExceptionGroup
                    summary = str(exc).strip().splitlines()
                    report.failures.append(
                        f"{case.operation.label} {response.status_code}: "
                        f"{' '.join(summary[:6])[:400]}"
                    )

            try:
                run()
            except Unsatisfiable:
                # Nothing to vary: e.g. no schema-invalid request exists for GET /health.
                continue
    return report


def _fuzz_app(appliance: Appliance) -> Litestar:
    appliance.ensure_collection("default")
    return create_app(appliance.settings, appliance)


def test_schemathesis_smoke(appliance: Appliance) -> None:
    report = fuzz(_fuzz_app(appliance), examples_per_operation=2)
    assert report.cases >= 20
    assert report.server_errors == 0, report.statuses
    assert not report.failures, "\n".join(report.failures[:10])


@pytest.mark.slow
def test_schemathesis_thousand_cases(appliance: Appliance) -> None:
    per_operation = int(os.environ.get("FUZZ_EXAMPLES", "150"))
    report = fuzz(_fuzz_app(appliance), examples_per_operation=per_operation)
    print(
        f"\nschemathesis: {report.cases} cases, {report.server_errors} 5xx, "
        f"statuses {json.dumps(dict(sorted(report.statuses.items())))}, "
        f"{len(report.failures)} schema mismatches"
    )
    assert report.cases >= 1000
    assert report.server_errors == 0, report.statuses
    assert not report.failures, "\n".join(report.failures[:10])
