"""Embedding versions: reindex with another model beside the active one, switch atomically,
roll back, drop; searches keep working throughout and never mix two models."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.config import Settings
from appliance.embedding.encoder import Encoder
from appliance.errors import InvalidRequest, ReindexConflict
from appliance.ingest.pipeline import DocumentInput
from appliance.models.registry import DEFAULT_REGISTRY_FILE, ModelRegistry
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from appliance.store import documents as document_store
from appliance.store import versions as version_store
from appliance.verify import verify
from tests.conftest import ANIMALS
from tests.tiny_models import build_tiny_model

DOCS = [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]
DENSE = SearchOptions(limit=6, mode="dense")
TINY_DIMENSION = 32


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), TINY_DIMENSION)


@pytest.fixture
def registry(tmp_path: Path, tiny_model_dir: Path) -> ModelRegistry:
    registry_file = tmp_path / "registry.json"
    shutil.copy(DEFAULT_REGISTRY_FILE, registry_file)
    registry = ModelRegistry(registry_file)
    registry.import_model(tiny_model_dir, "tiny")
    return registry


@pytest.fixture
def open_versioned(
    settings_for: Callable[..., Settings], encoder: Encoder, registry: ModelRegistry
) -> Iterator[Callable[..., Appliance]]:
    opened: list[Appliance] = []

    def build(**overrides: Any) -> Appliance:
        appliance = Appliance(settings_for(**overrides), registry=registry, encoder=encoder)
        opened.append(appliance)
        return appliance

    yield build
    for appliance in opened:
        appliance.jobs.stop()
        appliance.db.close()


@pytest.fixture
def versioned(open_versioned: Callable[..., Appliance]) -> Appliance:
    appliance = open_versioned()
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    return appliance


def _ids(appliance: Appliance, query: str, collection: str = "c") -> list[str]:
    return [hit.id for hit in appliance.search.search(collection, query, options=DENSE).results]


def _stored_ids(appliance: Appliance, model_id: str) -> np.ndarray:
    live = appliance.collections.get("c")
    with appliance.db.read() as session:
        return document_store.vector_ids(session, live.id, model_id)


def test_reindex_switches_to_the_new_model_and_its_own_index(versioned: Appliance) -> None:
    old_model = versioned.collections.get("c").model_id
    status = versioned.reindex.run("c", "tiny")
    live = versioned.collections.get("c")
    tiny = versioned.encoders.by_name("tiny")
    assert status.active and status.model_id == tiny.model_id == live.model_id
    assert live.dimension == TINY_DIMENSION and live.index.dimension == TINY_DIMENSION
    # The index holds exactly the new model's vectors: never one of the old model's.
    indexed = np.sort(live.index.ids())
    assert np.array_equal(indexed, np.sort(_stored_ids(versioned, tiny.model_id)))
    assert not set(indexed) & set(_stored_ids(versioned, old_model).tolist())
    assert len(indexed) == len(DOCS)
    # Searching embeds the query with the new model: scores are its cosine similarities.
    query = "a bird that swims"
    hits = versioned.search.search("c", query, options=DENSE).results
    vectors = tiny.encode([query, *(doc.text for doc in DOCS)])
    expected = {doc.id: float(vectors[0] @ vectors[i + 1]) for i, doc in enumerate(DOCS)}
    assert {hit.id: hit.score for hit in hits} == pytest.approx(expected, abs=1e-4)
    states = {v.model_id: v.state for v in versioned.reindex.versions("c")}
    assert states == {tiny.model_id: "active", old_model: "ready"}
    assert verify(versioned.settings).ok
    # The active model is stored once (the collection's model_id); each version row records
    # the dimension its model makes.
    with versioned.db.read() as session:
        rows = {
            row.model_id: (row.state, row.dimension)
            for row in version_store.list_versions(session, live.id)
        }
        assert version_store.model_dimension(session, tiny.model_id) == TINY_DIMENSION
    assert rows == {
        tiny.model_id: ("ready", TINY_DIMENSION),
        old_model: ("ready", versioned.encoder.dimension),
    }
    with versioned.db.write() as session, pytest.raises(ValueError, match="model_id"):
        version_store.record_version(session, live.id, tiny.model_id, version_store.ACTIVE)


def test_rollback_reuses_the_kept_vectors_and_embeds_only_changed_documents(
    versioned: Appliance, encoder: Encoder
) -> None:
    before = _ids(versioned, "which animal barks")
    old_model = versioned.collections.get("c").model_id
    old_vectors = set(_stored_ids(versioned, old_model).tolist())
    versioned.reindex.run("c", "tiny")
    # Written while the tiny model is active: only the tiny model embeds them.
    versioned.ingest.upsert(
        "c", [DocumentInput(id="dog", text="A dog barks loudly at night and guards the house.")]
    )
    versioned.ingest.upsert("c", [DocumentInput(id="owl", text="An owl hoots in the dark.")])
    encoded = encoder.texts_encoded
    versioned.reindex.run("c", "all-MiniLM-L6-v2")
    # Exactly the changed and the new document were embedded by the old model again.
    assert encoder.texts_encoded - encoded == 2
    live = versioned.collections.get("c")
    assert live.model_id == old_model and live.dimension == encoder.dimension
    kept = old_vectors & set(_stored_ids(versioned, old_model).tolist())
    assert len(kept) == len(DOCS) - 1  # every unchanged document kept its vector
    after = _ids(versioned, "which animal barks")
    assert after[0] == "dog" and before[0] == "dog"
    fresh = versioned.search.search("c", "hoots in the dark", options=DENSE).results[0]
    assert fresh.id == "owl"
    assert verify(versioned.settings).ok


def test_a_changed_text_drops_the_stale_vectors_of_every_model(versioned: Appliance) -> None:
    versioned.reindex.run("c", "tiny")
    tiny = versioned.collections.get("c").model_id
    versioned.reindex.run("c", "all-MiniLM-L6-v2")
    live = versioned.collections.get("c")
    with versioned.db.read() as session:
        assert version_store.count_documents_without_vectors(session, live.id, tiny) == 0
    versioned.ingest.upsert("c", [DocumentInput(id="cat", text="The cat hunts mice at dawn.")])
    with versioned.db.read() as session:
        # The kept tiny version no longer has a vector for the old cat text.
        assert version_store.count_documents_without_vectors(session, live.id, tiny) == 1


def test_drop_refuses_the_active_version_and_deletes_a_kept_one(versioned: Appliance) -> None:
    old_model = versioned.collections.get("c").model_id
    versioned.reindex.run("c", "tiny")
    with pytest.raises(ReindexConflict, match="searches with"):
        versioned.reindex.drop("c", "tiny")
    assert versioned.reindex.drop("c", "all-MiniLM-L6-v2") == len(DOCS)
    assert len(_stored_ids(versioned, old_model)) == 0
    assert [v.model_id for v in versioned.reindex.versions("c")] == [
        versioned.collections.get("c").model_id
    ]


def test_unknown_models_and_concurrent_reindexes_are_refused(versioned: Appliance) -> None:
    with pytest.raises(InvalidRequest, match="not registered"):
        versioned.reindex.run("c", "no-such-model")
    versioned.reindex._claim("c")  # as if a reindex were running
    with pytest.raises(ReindexConflict, match="already running"):
        versioned.reindex.start("c", "tiny")


def test_searches_run_throughout_a_background_reindex_without_errors_or_stale_results(
    versioned: Appliance,
) -> None:
    versioned.ingest.upsert(
        "c", [DocumentInput(id=f"n{i}", text=f"note {i} about animals") for i in range(300)]
    )
    query = "which animal barks"
    cached = versioned.search.search("c", query, options=DENSE)
    assert versioned.search.search("c", query, options=DENSE).cached
    errors: list[BaseException] = []
    searches = 0
    stop = threading.Event()

    def search_loop() -> None:
        nonlocal searches
        while not stop.is_set():
            try:
                versioned.search.search("c", query, options=SearchOptions(limit=5))
                searches += 1
            except BaseException as exc:  # every failure counts
                errors.append(exc)

    searcher = threading.Thread(target=search_loop)
    searcher.start()
    versioned.reindex.start("c", "tiny")
    versioned.reindex.wait("c", timeout=300)
    stop.set()
    searcher.join()
    assert errors == [] and searches > 0
    tiny = versioned.encoders.by_name("tiny")
    assert versioned.reindex.version("c", "tiny").state == "active"
    after = versioned.search.search("c", query, options=DENSE)
    assert not after.cached  # the switch bumped the generation: the old answer is not served
    vectors = tiny.encode([query, after.results[0].text])
    assert after.results[0].score == pytest.approx(float(vectors[0] @ vectors[1]), abs=1e-4)
    assert [h.id for h in after.results] != [h.id for h in cached.results] or (
        after.results[0].score != cached.results[0].score
    )


def test_a_restart_and_another_process_see_the_switch(
    versioned: Appliance, open_versioned: Callable[..., Appliance]
) -> None:
    other = open_versioned()  # another process on the same store
    assert _ids(other, "bird") == _ids(versioned, "bird")
    versioned.reindex.run("c", "tiny")
    tiny = versioned.encoders.by_name("tiny").model_id
    assert other.collections.get("c").model_id == tiny
    assert _ids(other, "bird") == _ids(versioned, "bird")
    versioned.close()
    restarted = open_versioned()
    live = restarted.collections.get("c")
    assert live.model_id == tiny and len(live.index) == len(DOCS)
    assert _ids(restarted, "bird") == _ids(other, "bird")


def test_an_interrupted_reindex_is_marked_and_resumes(versioned: Appliance) -> None:
    live = versioned.collections.get("c")
    tiny = versioned.encoders.by_name("tiny")
    versioned.reindex.batch_documents = 2

    def stop_after_first_batch(done: int, total: int) -> None:
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        versioned.reindex.run("c", "tiny", stop_after_first_batch)
    with versioned.db.write() as session:
        # What a killed process leaves: a version still marked building.
        version_store.record_version(session, live.id, tiny.model_id, "building")
    versioned.reindex.mark_interrupted()
    assert versioned.reindex.version("c", "tiny").state == "interrupted"
    assert len(_stored_ids(versioned, tiny.model_id)) == 2
    encoded = tiny.texts_encoded
    versioned.reindex.run("c", "tiny")
    assert tiny.texts_encoded - encoded == len(DOCS) - 2  # resumed, not restarted
    assert versioned.collections.get("c").model_id == tiny.model_id


def test_reindex_over_http(versioned: Appliance) -> None:
    with TestClient(create_app(versioned.settings, versioned)) as client:
        unknown = client.post("/collections/c/reindex", json={"model": "nope"})
        assert unknown.status_code == 400 and "not registered" in unknown.json()["detail"]
        assert client.post("/collections/zzz/reindex", json={"model": "tiny"}).status_code == 404
        started = client.post("/collections/c/reindex", json={"model": "tiny"})
        assert started.status_code == 202, started.text
        assert started.json()["model_id"].startswith("tiny@")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            versions = client.get("/collections/c/versions").json()["versions"]
            if versions[0]["model_id"].startswith("tiny@"):
                break
            time.sleep(0.1)
        assert versions[0]["state"] == "active" and versions[0]["vectors"] == len(DOCS)
        assert client.get("/collections/c").json()["model_id"].startswith("tiny@")
        refused = client.delete("/collections/c/versions/tiny")
        assert refused.status_code == 409 and "switch to another" in refused.json()["detail"]
        assert client.delete("/collections/c/versions/all-MiniLM-L6-v2").status_code == 204
        assert client.delete("/collections/c/versions/all-MiniLM-L6-v2").status_code == 404
        hits = client.post("/collections/c/search", json={"query": "bird", "mode": "dense"})
        assert hits.status_code == 200 and len(hits.json()["results"]) == len(DOCS)
        assert hits.json()["model_id"] == versions[0]["model_id"]
