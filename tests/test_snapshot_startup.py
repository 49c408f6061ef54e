"""Start-up from an index snapshot: a current snapshot is used as is (no scan of the stored
ids); any write since it, or a snapshot without a generation, means a catch-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from appliance.collections.manager import CollectionManager
from appliance.index.registry import DEFAULT_INDEX
from appliance.store import documents as document_store
from appliance.store.database import Database
from appliance.store.documents import EmbeddedText, NewDocument, content_hash

DIM = 8


def open_manager(tmp_path: Path) -> CollectionManager:
    manager = CollectionManager(
        Database(tmp_path / "store.sqlite3"),
        tmp_path / "indexes",
        dimension_of=lambda _model: DIM,
        exact_filter_threshold=1_000,
    )
    manager.open_all()
    return manager


def write(manager: CollectionManager, first: int, count: int, seed: int = 0) -> None:
    live = manager.get("c")
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    documents = [
        NewDocument(f"d{i}", f"text {i}", {}, content_hash(f"text {i}"))
        for i in range(first, first + count)
    ]
    embedded = {
        doc.external_id: EmbeddedText([(0, 6)], vectors[n : n + 1])
        for n, doc in enumerate(documents)
    }
    with live.write_lock:
        with manager.db.write() as session:
            result = document_store.upsert_documents(session, live.id, "m", documents, embedded)
        manager.apply(live, result)


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    manager = open_manager(tmp_path)
    manager.create("c", DEFAULT_INDEX, "m")
    write(manager, 0, 50)
    manager.save_snapshots()
    manager.db.close()
    return tmp_path


def test_current_snapshot_is_used_without_a_catch_up(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_catch_up(*_: object) -> None:
        raise AssertionError("a current snapshot needs no catch-up")

    monkeypatch.setattr(CollectionManager, "catch_up", no_catch_up)
    manager = open_manager(saved)
    live = manager.peek("c")
    assert live is not None and len(live.index) == 50 and not live.dirty
    monkeypatch.undo()
    # The generation it took from the store is the store's: no catch-up on the next get.
    assert manager.get("c").generation == live.generation


def test_writes_after_the_snapshot_are_caught_up(saved: Path) -> None:
    other = open_manager(saved)  # another process writes; no snapshot is saved after it
    write(other, 50, 7, seed=1)
    with other.db.write() as session:
        document_store.delete_documents(session, other.get("c").id, ["d3"])
    manager = open_manager(saved)
    live = manager.peek("c")
    assert live is not None
    with manager.db.read() as session:
        stored = set(document_store.vector_ids(session, live.id, "m").tolist())
    assert set(live.index.ids().tolist()) == stored and len(stored) == 56


def test_a_snapshot_without_a_generation_is_caught_up(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = next((saved / "indexes").glob("collection-*/manifest.json"))
    written = json.loads(manifest.read_text())
    del written["generation"]
    manifest.write_text(json.dumps(written))
    calls: list[str] = []
    original = CollectionManager.catch_up

    def counted(self: CollectionManager, live: object) -> None:
        calls.append("catch_up")
        original(self, live)  # type: ignore[arg-type]

    monkeypatch.setattr(CollectionManager, "catch_up", counted)
    manager = open_manager(saved)
    assert calls == ["catch_up"]
    live = manager.peek("c")
    assert live is not None and len(live.index) == 50


def test_start_up_does_not_import_the_milvus_client() -> None:
    """pymilvus imports pandas (~0.4 s warm, more from a cold page cache): a server on the
    local backends imports it only when a milvus index is asked for."""
    probe = (
        "import sys, appliance.service, appliance.api.app, appliance.cli.serve;"
        "print(sorted(m for m in ('pymilvus', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
