"""Typed collection settings: content settings fixed at creation, search defaults that PATCH
changes, index traits declared by the backends, and query parameters checked against them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import faiss
import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.collections.settings import (
    CollectionSettings,
    ContentSettings,
    SearchDefaults,
    index_part,
    joined_options,
    split_options,
)
from appliance.index.base import IndexConfig
from appliance.index.faiss_index import gpu_count
from appliance.index.registry import backend_for
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from tests.conftest import ANIMALS

DOCUMENTS = [{"id": i, "text": t, "metadata": m} for i, t, m in ANIMALS]


@pytest.fixture
def client(appliance: Appliance) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(appliance.settings, appliance)) as test_client:
        yield test_client


def _fill(client: TestClient[Any], name: str) -> None:
    answer = client.put(f"/collections/{name}/documents", json={"documents": DOCUMENTS})
    assert answer.is_success, answer.text


def test_a_collection_is_created_with_its_search_mode(client: TestClient[Any]) -> None:
    created = client.post("/collections", json={"name": "kw", "mode": "keyword"})
    assert created.status_code == 201, created.text
    assert created.json()["search"]["mode"] == "keyword"
    assert created.json()["index"]["mode"] == "keyword"  # the flat view, as before
    _fill(client, "kw")
    answer = client.post("/collections/kw/search", json={"query": "penguins"})
    assert answer.json()["mode"] == "keyword"


def test_content_settings_are_kept_and_shown(client: TestClient[Any]) -> None:
    body = {"name": "short", "chunk_tokens": 64, "chunk_overlap": 8, "title_weight": 2.0}
    assert client.post("/collections", json=body).status_code == 201
    shown = client.get("/collections/short").json()
    assert shown["content"] == {"chunking": True, "chunk_tokens": 64, "chunk_overlap": 8}
    assert shown["search"]["title_weight"] == 2.0
    assert shown["traits"] == {"exact": False, "lossy": False, "query_params": ["ef"]}
    assert shown["search_device"] == "cpu"  # hnswlib has no GPU form


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"alpha": 1.5}, "alpha"),
        ({"mode": "fuzzy"}, "mode"),
        ({"chunk_tokens": 2}, "chunk_tokens"),
        ({"chunk_tokens": 32, "chunk_overlap": 32}, "chunk_overlap"),
        ({"index": {"backend": "hnswlib", "nprobe": 8}}, "nprobe"),
    ],
)
def test_creation_refuses_settings_out_of_bounds(
    client: TestClient[Any], body: dict[str, Any], field: str
) -> None:
    answer = client.post("/collections", json={"name": "bad", **body})
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["detail"]
    assert client.get("/collections/bad").status_code == 404


def test_patch_changes_search_defaults_and_moves_the_generation(
    client: TestClient[Any],
) -> None:
    assert client.post("/collections", json={"name": "c"}).status_code == 201
    _fill(client, "c")
    before = client.post("/collections/c/search", json={"query": "penguins"}).json()
    assert before["mode"] == "hybrid"
    generation = client.get("/collections/c").json()["generation"]
    changed = client.patch("/collections/c", json={"mode": "keyword", "alpha": 0.7})
    assert changed.status_code == 200, changed.text
    assert changed.json()["search"]["mode"] == "keyword"
    assert changed.json()["search"]["alpha"] == 0.7
    assert changed.json()["generation"] == generation + 1
    after = client.post("/collections/c/search", json={"query": "penguins"}).json()
    assert after["mode"] == "keyword" and not after.get("cached")
    again = client.patch("/collections/c", json={"title_weight": 1.0}).json()
    assert again["search"]["mode"] == "keyword"  # fields left out stay


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"chunk_tokens": 128}, "fixed at creation"),
        ({"chunking": False}, "fixed at creation"),
        ({"index": {"backend": "faiss"}}, "PUT /collections/c/index"),
        ({"alpha": -1}, "alpha"),
    ],
)
def test_patch_refuses_what_it_cannot_change(
    client: TestClient[Any], body: dict[str, Any], words: str
) -> None:
    assert client.post("/collections", json={"name": "c"}).status_code == 201
    answer = client.patch("/collections/c", json=body)
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["detail"]


def test_a_query_parameter_the_index_does_not_read_is_refused(client: TestClient[Any]) -> None:
    assert client.post("/collections", json={"name": "c"}).status_code == 201
    _fill(client, "c")
    answer = client.post("/collections/c/search", json={"query": "bird", "params": {"nprobe": 8}})
    assert answer.status_code == 400
    assert "nprobe" in answer.json()["detail"] and "accepts ef" in answer.json()["detail"]
    flat = {"name": "flat", "index": {"backend": "faiss", "spec": "Flat"}}
    assert client.post("/collections", json=flat).status_code == 201
    _fill(client, "flat")
    refused = client.post("/collections/flat/search", json={"query": "bird", "params": {"ef": 64}})
    assert refused.status_code == 400
    assert "no query parameters" in refused.json()["detail"]
    fine = client.post("/collections/c/search", json={"query": "bird", "params": {"ef": 64}})
    assert fine.status_code == 200


def test_settings_survive_a_move_onto_another_index(client: TestClient[Any]) -> None:
    body = {"name": "c", "mode": "dense", "chunk_tokens": 100}
    assert client.post("/collections", json=body).status_code == 201
    moved = client.put("/collections/c/index", json={"backend": "faiss", "spec": "Flat"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["search"]["mode"] == "dense"
    assert moved.json()["content"]["chunk_tokens"] == 100
    assert moved.json()["traits"]["exact"] is True
    # A FAISS Flat index goes to a GPU only where faiss is a GPU build that sees one.
    expected = "cuda:0" if gpu_count(faiss) > 0 else "cpu"
    assert moved.json()["search_device"] == expected


@pytest.mark.parametrize(
    ("config", "exact", "lossy", "params"),
    [
        ("faiss:Flat", True, False, ()),
        ("faiss:IDMap2,Flat", True, False, ()),
        ("faiss:HNSW32,Flat", False, False, ("ef",)),
        ("faiss:IVF256,PQ48", False, True, ("nprobe",)),
        ("faiss:HNSW32,SQ8", False, True, ("ef",)),
        ("hnswlib:M=32", False, False, ("ef",)),
        ("milvus:FLAT", True, False, ()),
        ("milvus:IVF_FLAT,nlist=64", False, False, ("nprobe",)),
    ],
)
def test_backends_declare_their_traits(
    config: str, exact: bool, lossy: bool, params: tuple[str, ...]
) -> None:
    backend, _, spec = config.partition(":")
    index = IndexConfig(backend=backend, spec=spec)
    traits = backend_for(index).traits(index)
    assert (traits.exact, traits.lossy, traits.query_params) == (exact, lossy, params)


def test_stored_options_read_as_before() -> None:
    stored = {"ef": 128, "chunking": False, "chunk_overlap": 16, "mode": "keyword", "alpha": 1}
    index, settings = split_options(stored)
    assert index == {"ef": 128}
    assert settings.content == ContentSettings(chunking=False, chunk_overlap=16)
    assert settings.search == SearchDefaults(mode="keyword", alpha=1.0)
    assert joined_options(index, settings) == {**stored, "alpha": 1.0}
    # A collection made without settings stores what it always did.
    assert joined_options({"ef": 128}, CollectionSettings()) == {"ef": 128}


def test_search_defaults_changed_by_another_process_need_no_rebuild(open_appliance: Any) -> None:
    server: Appliance = open_appliance(result_cache_size=0)
    server.create_collection("c")
    server.ingest.upsert("c", [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS])
    index = server.collections.get("c").index
    other: Appliance = open_appliance()
    other.collections.change_search_defaults("c", SearchDefaults(mode="keyword"))
    assert server.search.search("c", "penguins").mode == "keyword"
    assert server.collections.get("c").index is index


def test_an_index_is_made_without_the_search_defaults() -> None:
    # A server-side index is named after its configuration: changing a default must not move it.
    stored = IndexConfig(
        backend="milvus", spec="HNSW", options={"ef": 128, "mode": "keyword", "chunking": False}
    )
    assert index_part(stored).options == {"ef": 128, "chunking": False}
    plain = IndexConfig(backend="hnswlib", spec="M=32", options={"ef": 64})
    assert index_part(plain) is plain
