"""Background ingest jobs: 202 + job id, progress, per-document errors, resume after restart."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.api.schemas import UpsertDocuments
from appliance.config import MAX_BATCH_DOCUMENTS, MAX_TEXT_CHARS, Settings
from appliance.errors import InvalidConfig, InvalidRequest
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from appliance.store.schema import JobRow
from tests.conftest import ANIMALS

DOCS = [{"id": i, "text": t, "metadata": m} for i, t, m in ANIMALS]


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    appliance.ensure_collection("default")
    appliance.jobs.start()
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client
    appliance.jobs.stop()


def _wait(client: TestClient[Any], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_async_upsert_returns_202_and_the_job_finishes(client: TestClient[Any]) -> None:
    bad = {"id": "empty", "text": "   "}
    response = client.put(
        "/collections/default/documents?async=true", json={"documents": [*DOCS, bad]}
    )
    assert response.status_code == 202
    job = _wait(client, response.json()["id"])
    assert job["state"] == "succeeded" and job["done"] == job["total"] == len(DOCS)
    assert job["embedded"] == len(DOCS)
    # Named by its place in the request, as the answered-at-once path names it.
    assert job["errors"] == [
        {
            "id": "empty",
            "error": f"documents[{len(DOCS)}].text is empty; a document needs some text",
        }
    ]
    hits = client.post("/search", json={"query": "which animal barks"}).json()["results"]
    assert hits[0]["id"] == "dog"


def test_large_batches_go_to_a_job_by_themselves(
    settings_for: Callable[..., Any], encoder: Any
) -> None:
    appliance = Appliance(settings_for(async_threshold=3), encoder=encoder)
    appliance.ensure_collection("default")
    appliance.jobs.start()
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        assert (
            test_client.put(
                "/collections/default/documents", json={"documents": DOCS[:3]}
            ).status_code
            == 200
        )
        response = test_client.put("/collections/default/documents", json={"documents": DOCS})
        assert response.status_code == 202
        assert _wait(test_client, response.json()["id"])["state"] == "succeeded"
    appliance.jobs.stop()


def test_unknown_job_and_all_invalid_batches_are_clear_errors(client: TestClient[Any]) -> None:
    missing = client.get("/jobs/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "job_not_found"
    bad = client.put(
        "/collections/default/documents?async=true", json={"documents": [{"id": "a", "text": " "}]}
    )
    assert bad.status_code == 400 and "no document in the batch is valid" in bad.json()["detail"]
    assert (
        client.put("/collections/nope/documents?async=true", json={"documents": DOCS}).status_code
        == 404
    )


def test_an_interrupted_job_resumes_after_a_restart(
    open_appliance: Callable[..., Appliance],
) -> None:
    first = open_appliance()
    first.ensure_collection("default")
    documents = [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]
    first.ingest.upsert("default", documents[:2])
    # As a process killed mid-job leaves it: running, two documents done and committed.
    with first.db.write() as session:
        session.add(
            JobRow(
                id="interrupted",
                collection="default",
                state="running",
                total=len(documents),
                done=2,
                payload=[asdict(doc) for doc in documents],
            )
        )
    second = open_appliance()
    embedded_before = second.encoder.texts_encoded
    second.jobs.start()
    deadline = time.monotonic() + 60
    while second.jobs.get("interrupted").state != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.05)
    second.jobs.stop()
    job = second.jobs.get("interrupted")
    assert (job.state, job.done, job.embedded) == ("succeeded", len(documents), len(documents) - 2)
    assert second.encoder.texts_encoded - embedded_before == len(documents) - 2
    assert len(second.collections.get("default").index) == len(documents)


def test_cli_shows_a_job(open_appliance: Callable[..., Appliance]) -> None:
    import json

    from click.testing import CliRunner

    from appliance.cli import main

    appliance = open_appliance()
    appliance.ensure_collection("default")
    job = appliance.jobs.submit("default", [DocumentInput(id="a", text="a fox")])
    appliance.jobs.run_job(job.id)
    result = CliRunner().invoke(
        main, ["jobs", "show", job.id, "--follow", "--data-dir", appliance.settings.data_dir]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert (shown["state"], shown["done"], shown["total"]) == ("succeeded", 1, 1)
    missing = CliRunner().invoke(
        main, ["jobs", "show", "nope", "--data-dir", appliance.settings.data_dir]
    )
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_a_job_batch_has_the_same_bound_as_an_answered_at_once_one(
    settings_for: Callable[..., Any], encoder: Any
) -> None:
    """The async path used to validate document by document and so took a batch the sync path
    refuses."""
    appliance = Appliance(settings_for(max_batch_documents=3), encoder=encoder)
    appliance.ensure_collection("default")
    docs = [DocumentInput(id=str(i), text=f"text {i}") for i in range(4)]
    with pytest.raises(InvalidRequest, match="send at most 3 per request"):
        appliance.ingest.upsert("default", docs)
    with pytest.raises(InvalidRequest, match="send at most 3 per request"):
        appliance.jobs.submit("default", docs)
    appliance.close()


def test_the_request_schema_bounds_are_the_settings_ceilings() -> None:
    too_many = {"documents": [{"id": str(i), "text": "x"} for i in range(MAX_BATCH_DOCUMENTS + 1)]}
    with pytest.raises(msgspec.ValidationError, match="length <= 2000"):
        msgspec.json.decode(msgspec.json.encode(too_many), type=UpsertDocuments)
    too_long = {"documents": [{"id": "a", "text": "x" * (MAX_TEXT_CHARS + 1)}]}
    with pytest.raises(msgspec.ValidationError, match="length <= 200000"):
        msgspec.json.decode(msgspec.json.encode(too_long), type=UpsertDocuments)
    with pytest.raises(InvalidConfig, match="max_batch_documents must be between 1 and 2000"):
        Settings(max_batch_documents=MAX_BATCH_DOCUMENTS + 1)
