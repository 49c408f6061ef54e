"""Ingest → search, upsert, delete, restart, and an index that always matches the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from appliance.errors import CollectionNotFound, InvalidRequest
from appliance.index.base import IndexConfig
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from tests.conftest import ANIMALS

DOCS = [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]
INDEXES = [
    None,
    IndexConfig(backend="faiss", spec="Flat"),
    IndexConfig(backend="faiss", spec="HNSW32,Flat"),
    IndexConfig(backend="faiss", spec="IVF4,Flat"),
]


def top(appliance: Appliance, query: str, collection: str = "c", **kwargs: object) -> list[str]:
    return [hit.id for hit in appliance.search.search(collection, query, **kwargs).results]


@pytest.mark.parametrize("config", INDEXES, ids=lambda c: c.label if c else "default")
def test_ingested_document_is_found_first(appliance: Appliance, config: IndexConfig | None) -> None:
    appliance.create_collection("c", config)
    assert appliance.ingest.upsert("c", DOCS).embedded == len(DOCS)
    assert top(appliance, "which animal barks?", limit=3)[0] == "dog"
    assert top(appliance, "birds that cannot fly and live in the cold")[0] == "penguin"


def test_upsert_changes_results_and_unchanged_text_is_not_reembedded(
    appliance: Appliance,
) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    again = appliance.ingest.upsert("c", DOCS)
    assert (again.embedded, again.unchanged) == (0, len(DOCS))
    # Metadata-only change: stored, still not re-embedded.
    moved = DocumentInput(id="cat", text=DOCS[0].text, metadata={"kind": "pet"})
    assert appliance.ingest.upsert("c", [moved]).embedded == 0
    hits = appliance.search.search("c", "a cat sleeping", limit=1).results
    assert hits[0].id == "cat" and hits[0].metadata == {"kind": "pet"}
    # New text: re-embedded, and search follows it at once.
    changed = DocumentInput(id="salmon", text="A grand piano plays a Chopin nocturne.")
    assert appliance.ingest.upsert("c", [changed]).embedded == 1
    assert top(appliance, "classical piano music", limit=1) == ["salmon"]
    assert "salmon" not in top(appliance, "fish swimming in rivers", limit=2)


def test_delete_removes_from_search_at_once(appliance: Appliance) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    assert appliance.ingest.delete("c", ["dog"]) == 1
    assert "dog" not in top(appliance, "which animal barks?", limit=10)
    assert appliance.ingest.delete("c", ["dog"]) == 0


@pytest.mark.parametrize("config", INDEXES, ids=lambda c: c.label if c else "default")
def test_restart_keeps_documents_and_index(
    open_appliance: Callable[..., Appliance], config: IndexConfig | None
) -> None:
    first = open_appliance()
    first.create_collection("c", config)
    first.ingest.upsert("c", DOCS)
    first.ingest.delete("c", ["eagle"])
    first.close()
    second = open_appliance()
    assert len(second.collections.get("c").index) == len(DOCS) - 1
    assert top(second, "which animal barks?", limit=1) == ["dog"]
    assert "eagle" not in top(second, "a bird of prey", limit=10)


def test_crash_before_snapshot_loses_nothing_acknowledged(
    open_appliance: Callable[..., Appliance],
) -> None:
    first = open_appliance()
    first.create_collection("c")
    first.ingest.upsert("c", DOCS[:3])
    first.collections.save_snapshots()
    # Acknowledged after the snapshot, then the process "dies" without saving again.
    first.ingest.upsert("c", DOCS[3:])
    first.ingest.delete("c", ["cat"])
    second = open_appliance()
    live = second.collections.get("c")
    assert len(live.index) == len(DOCS) - 1
    assert top(second, "salmon spawning upstream", limit=1) == ["salmon"]
    assert "cat" not in top(second, "a cat on a windowsill", limit=10)


def test_corrupt_snapshot_is_rebuilt_from_stored_vectors(
    open_appliance: Callable[..., Appliance], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = open_appliance()
    first.create_collection("c", IndexConfig(backend="faiss", spec="Flat"))
    first.ingest.upsert("c", DOCS)
    first.close()
    snapshot = next((tmp_path / "data" / "indexes").glob("collection-*/index.faiss"))
    snapshot.write_bytes(b"\x00" * 64)
    second = open_appliance()
    embedded_before = second.encoder.texts_encoded
    assert top(second, "which animal barks?", limit=1) == ["dog"]
    assert "checksum" in caplog.text
    # Rebuilt from stored vectors: only the query was embedded.
    assert second.encoder.texts_encoded == embedded_before + 1


def test_a_snapshot_failing_the_background_check_is_rebuilt_from_the_store(
    open_appliance: Callable[..., Appliance],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import appliance.index.snapshots as snapshots

    # Blocks small enough that start-up samples only some of the snapshot's bytes.
    monkeypatch.setattr(snapshots, "SAMPLE_BLOCK", 64)
    monkeypatch.setattr(snapshots, "SAMPLE_BLOCKS", 2)
    first = open_appliance()
    first.create_collection("c", IndexConfig(backend="faiss", spec="Flat"))
    first.ingest.upsert("c", DOCS)
    first.close()
    directory = next((tmp_path / "data" / "indexes").glob("collection-*"))
    manifest = snapshots.json.loads((directory / "manifest.json").read_text())
    sampled = {offset for offset, _ in manifest["samples"]["index.faiss"]}
    snapshot = directory / "index.faiss"
    data = bytearray(snapshot.read_bytes())
    # Zero a whole unsampled block of vector bytes: start-up does not see it.
    block = next(o for o in range(64 * 4, len(data) - 128, 64) if o not in sampled)
    data[block : block + 64] = bytes(64)
    snapshot.write_bytes(bytes(data))
    second = open_appliance()
    assert snapshots.check_snapshot(directory, "start") is None
    assert second.collections.check_snapshots() == ["c"]
    assert "rebuilding the index from the store" in caplog.text
    assert snapshots.check_snapshot(directory, "xxh3") is None  # saved anew
    assert top(second, "which animal barks?", limit=1) == ["dog"]
    assert second.collections.check_snapshots() == []  # checked once


def test_writes_by_another_process_are_searchable_without_restart(
    open_appliance: Callable[..., Appliance],
) -> None:
    server = open_appliance()
    server.create_collection("c")
    server.ingest.upsert("c", DOCS[:2])
    cli = open_appliance()  # a second process on the same data dir, like `appliance ingest`
    cli.ingest.upsert("c", DOCS[2:])
    cli.ingest.delete("c", ["cat"])
    assert top(server, "salmon spawning upstream", limit=1) == ["salmon"]
    assert "cat" not in top(server, "a cat on a windowsill", limit=10)
    cli.create_collection("made-elsewhere")
    assert server.collections.get("made-elsewhere").name == "made-elsewhere"


def test_store_is_wal_sqlite_with_vectors_and_model_ids(appliance: Appliance) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    if appliance.db.path is None:  # PostgreSQL: the same rows, bytea vectors
        with appliance.db.read() as session:
            rows = session.execute(text("SELECT model_id, length(vector) FROM vectors")).all()
    else:
        with sqlite3.connect(appliance.db.path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            rows = raw.execute("SELECT model_id, length(vector) FROM vectors").fetchall()
    assert len(rows) == len(DOCS)
    assert {model for model, _ in rows} == {appliance.encoder.model_id}
    assert {size for _, size in rows} == {384 * 4}


@pytest.mark.parametrize(
    ("docs", "message"),
    [
        ([DocumentInput(id="a", text="x"), DocumentInput(id="a", text="y")], "appears twice"),
        ([DocumentInput(id="a", text="   ")], "text is empty"),
        ([DocumentInput(id="", text="x")], "id must be"),
        ([DocumentInput(id="a", text="x", metadata={"v": float("inf")})], "non-finite"),
    ],
)
def test_bad_batches_are_refused_whole_and_change_nothing(
    appliance: Appliance, docs: list[DocumentInput], message: str
) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS[:1])
    with pytest.raises(InvalidRequest, match=message):
        appliance.ingest.upsert("c", [*docs, DocumentInput(id="new", text="fine")])
    assert len(appliance.collections.get("c").index) == 1


def test_empty_batch_is_refused(appliance: Appliance) -> None:
    appliance.create_collection("c")
    with pytest.raises(InvalidRequest, match="empty"):
        appliance.ingest.upsert("c", [])


def test_unknown_collection_is_a_clear_error(appliance: Appliance) -> None:
    with pytest.raises(CollectionNotFound, match="nope"):
        appliance.search.search("nope", "anything")
    appliance.create_collection("c")
    appliance.collections.drop("c")
    with pytest.raises(CollectionNotFound):
        appliance.ingest.upsert("c", DOCS)
