"""A whole appliance on the milvus backend: created over HTTP, filtered searches equal to the
local path's on the filter table, a reindex switching Milvus collections, a Milvus Lite file
(the default milvus_uri), a crash between the store commit and the Milvus write, and verify."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.config import Settings, load_settings
from appliance.embedding.encoder import Encoder
from appliance.index import milvus_index
from appliance.index.base import IndexConfig, IndexServer
from appliance.index.milvus_index import MilvusIndex, client_for
from appliance.ingest.pipeline import DocumentInput
from appliance.models.registry import DEFAULT_REGISTRY_FILE, ModelRegistry
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from appliance.store import documents as document_store
from appliance.verify import verify
from tests.conftest import ANIMALS
from tests.milvus_fixtures import milvus_server, milvus_uri
from tests.test_filters import FILTERS, _docs, _matches
from tests.tiny_models import build_tiny_model

pytestmark = pytest.mark.milvus
__all__ = ["milvus_server", "milvus_uri"]

PETS = [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]
DENSE = SearchOptions(limit=6, mode="dense")


def _settings(data_dir: Path, server: IndexServer | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": str(data_dir), "load_sample": False, **overrides}
    if server is not None:
        values.update(milvus_uri=server.uri, milvus_namespace=server.namespace)
    return load_settings(Path("/nonexistent.toml"), **values)


def _ids(appliance: Appliance, collection: str, query: str, **options: Any) -> list[str]:
    outcome = appliance.search.search(collection, query, options=SearchOptions(**options))
    return [hit.id for hit in outcome.results]


def test_a_milvus_collection_over_http(
    tmp_path: Path, milvus_server: IndexServer, encoder: Encoder
) -> None:
    appliance = Appliance(_settings(tmp_path, milvus_server), encoder=encoder)
    with TestClient(create_app(appliance.settings, appliance)) as client:
        created = client.post(
            "/collections", json={"name": "pets", "index": {"backend": "milvus", "spec": "HNSW"}}
        )
        assert created.status_code == 201, created.text
        assert created.json()["index"] == {"backend": "milvus", "spec": "HNSW"}
        documents = [{"id": i, "text": t, "metadata": m} for i, t, m in ANIMALS]
        assert client.put("/collections/pets/documents", json={"documents": documents}).is_success
        body = client.post(
            "/collections/pets/search", json={"query": "which animal barks", "mode": "dense"}
        ).json()
        assert body["results"][0]["id"] == "dog"
        filtered = client.post(
            "/collections/pets/search",
            json={"query": "flying hunter", "filter": {"kind": "bird"}, "params": {"ef": 16}},
        ).json()
        assert {hit["id"] for hit in filtered["results"]} == {"eagle", "penguin"}
        shown = client.get("/collections/pets").json()
        assert shown["vectors_indexed"] == len(ANIMALS)
        assert shown["search_device"] is None  # the Milvus server searches it
        bad = client.post(
            "/collections", json={"name": "x", "index": {"backend": "milvus", "spec": "IVF_PQ"}}
        )
        assert bad.status_code == 400 and "IVF_PQ" in bad.json()["detail"]
        name = appliance.collections.get("pets").index.name  # type: ignore[attr-defined]
        assert client.delete("/collections/pets").status_code == 204
        assert not client_for(milvus_server).has_collection(name)
    appliance.db.close()


def test_without_pymilvus_asking_for_milvus_is_a_clear_400(
    appliance: Appliance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(milvus_index, "pymilvus", None)
    with TestClient(create_app(appliance.settings, appliance)) as client:
        response = client.post(
            "/collections", json={"name": "m", "index": {"backend": "milvus", "spec": "HNSW"}}
        )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "index_backend_unavailable" and "pymilvus" in body["detail"]


# -- filters: the local path's results, from Milvus -------------------------------------------
@pytest.fixture(scope="module")
def filtered(
    tmp_path_factory: pytest.TempPathFactory, milvus_uri: str, encoder: Encoder
) -> Iterator[tuple[Appliance, list[DocumentInput], dict[str, list[str]]]]:
    """One corpus embedded once (faiss Flat), every filter's exact results noted; the collection
    then moves onto Milvus from its stored vectors. exact_filter_threshold=0 sends every
    filtered search to the index, never to the stored vectors, so Milvus answers them all."""
    server = IndexServer(milvus_uri, namespace="filters")
    directory = tmp_path_factory.mktemp("milvus-filters")
    appliance = Appliance(_settings(directory, server, exact_filter_threshold=0), encoder=encoder)
    corpus = _docs(600)
    appliance.create_collection("c", IndexConfig(backend="faiss", spec="Flat"))
    appliance.ingest.upsert("c", corpus)
    local = {
        str(spec): _ids(
            appliance, "c", "a chess opening for beginners", limit=10, filter=spec, mode="dense"
        )
        for spec in FILTERS
    }
    yield appliance, corpus, local
    appliance.db.close()


@pytest.mark.parametrize("spec", ["FLAT", "HNSW"])
def test_filtered_results_equal_the_local_path_at_every_selectivity(
    filtered: tuple[Appliance, list[DocumentInput], dict[str, list[str]]], spec: str
) -> None:
    appliance, corpus, local = filtered
    appliance.collections.reconfigure("c", IndexConfig(backend="milvus", spec=spec))
    assert isinstance(appliance.collections.get("c").index, MilvusIndex)
    for filter_spec in FILTERS:
        found = _ids(
            appliance,
            "c",
            "a chess opening for beginners",
            limit=10,
            filter=filter_spec,
            mode="dense",
        )
        expected = local[str(filter_spec)]
        assert all(_matches(doc.metadata, filter_spec) for doc in corpus if doc.id in found)
        if spec == "FLAT":
            assert found == expected, filter_spec
        else:
            # HNSW over 600 vectors with the widened ef: the same ten, order aside.
            assert len(found) == len(expected)
            assert len(set(found) & set(expected)) >= 0.9 * len(expected), filter_spec


# -- reindex: one Milvus collection per embedding version -------------------------------------
@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> ModelRegistry:
    registry_file = tmp_path / "registry.json"
    shutil.copy(DEFAULT_REGISTRY_FILE, registry_file)
    registry = ModelRegistry(registry_file)
    registry.import_model(build_tiny_model(tmp_path_factory.mktemp("tiny"), 32), "tiny")
    return registry


def test_reindex_switches_between_two_milvus_collections(
    tmp_path: Path, milvus_server: IndexServer, encoder: Encoder, registry: ModelRegistry
) -> None:
    appliance = Appliance(_settings(tmp_path, milvus_server), registry=registry, encoder=encoder)
    appliance.create_collection("c", IndexConfig(backend="milvus", spec="HNSW"))
    appliance.ingest.upsert("c", PETS)
    before = appliance.collections.get("c").index
    assert isinstance(before, MilvusIndex)
    status = appliance.reindex.run("c", "tiny")
    live = appliance.collections.get("c")
    after = live.index
    assert status.active and live.model_id == status.model_id
    assert isinstance(after, MilvusIndex) and after.name != before.name
    assert after.dimension == 32
    client = client_for(milvus_server)
    assert client.has_collection(after.name) and not client.has_collection(before.name)
    with appliance.db.read() as session:
        stored = document_store.vector_ids(session, live.id, live.model_id)
    assert sorted(after.ids().tolist()) == sorted(stored.tolist())
    assert len(_ids(appliance, "c", "a bird", mode="dense")) == len(PETS)
    # And back: the kept vectors of the first model fill a Milvus collection again.
    appliance.reindex.run("c", "all-MiniLM-L6-v2")
    assert _ids(appliance, "c", "which animal barks", mode="dense")[0] == "dog"
    assert verify(appliance.settings).ok
    appliance.db.close()


# -- a Milvus Lite file, a crash, and verify ----------------------------------------------------
def test_milvus_lite_file_crash_between_commit_and_insert_and_verify(
    settings_for: Callable[..., Settings],
    encoder: Encoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = settings_for()  # milvus_uri "": <data_dir>/milvus.db
    assert settings.milvus_address.endswith("milvus.db")
    appliance = Appliance(settings, encoder=encoder)
    appliance.create_collection("c", IndexConfig(backend="milvus", spec="FLAT"))
    appliance.ingest.upsert("c", PETS[:4])
    assert Path(settings.milvus_address).exists()
    assert settings.milvus_namespace_file.read_text().strip()

    def crash(*_args: Any) -> None:
        raise SystemExit("killed after the store commit, before the Milvus insert")

    monkeypatch.setattr(appliance.collections, "apply", crash)
    with pytest.raises(SystemExit):
        appliance.ingest.upsert("c", PETS[4:])
    appliance.db.close()

    report = verify(settings)
    assert not report.ok
    assert any("2 stored vectors are not in the index" in p for p in report.collections[0].problems)
    assert "milvus collection appliance_" in report.collections[0].snapshot

    restarted = Appliance(settings, encoder=encoder)
    assert _ids(restarted, "c", "swimming upstream", mode="dense")[0] == "salmon"
    assert len(restarted.collections.get("c").index) == len(PETS)
    restarted.db.close()
    assert verify(settings).ok


def test_hand_off_a_local_collection_to_milvus_over_http(
    tmp_path: Path, milvus_server: IndexServer, encoder: Encoder
) -> None:
    appliance = Appliance(_settings(tmp_path, milvus_server), encoder=encoder)
    appliance.create_collection("pets")
    appliance.ingest.upsert("pets", PETS)
    with TestClient(create_app(appliance.settings, appliance)) as client:
        moved = client.put("/collections/pets/index", json={"backend": "milvus", "spec": "FLAT"})
        assert moved.status_code == 200, moved.text
        assert moved.json()["index"]["backend"] == "milvus"
        assert moved.json()["vectors_indexed"] == len(PETS)
        body = client.post(
            "/collections/pets/search", json={"query": "which animal barks", "mode": "dense"}
        ).json()
        assert body["results"][0]["id"] == "dog"
        bad = client.put("/collections/pets/index", json={"backend": "milvus", "spec": "X"})
        assert bad.status_code == 400
    assert isinstance(appliance.collections.get("pets").index, MilvusIndex)
    appliance.db.close()
