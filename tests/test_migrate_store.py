"""`appliance migrate-store`: a whole store copied from a SQLite data dir into PostgreSQL and
back, ids and vectors as they were (nothing re-embedded), then verified."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from appliance.cli import main
from appliance.ingest.pipeline import DocumentInput
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from appliance.store import documents as document_store
from appliance.store import feedback as feedback_store
from appliance.store import keys as key_store
from appliance.store.database import Database
from appliance.store.dialect import StoreLocation
from appliance.store.migration import target_metadata
from tests.conftest import ANIMALS

pytestmark = pytest.mark.postgres


def _rows(location: StoreLocation) -> dict[str, list[Any]]:
    db = Database(location)
    try:
        with db.read() as session:
            out = {
                table.name: [
                    tuple(row)
                    for row in session.execute(select(table).order_by(*table.primary_key))
                ]
                for table in target_metadata().sorted_tables
            }
            out["issued"] = [document_store.issued_vector_id(session)]
            return out
    finally:
        db.close()


def _search(appliance: Appliance) -> list[list[str]]:
    return [
        [hit.id for hit in appliance.search.search("animals", query, options=options).results]
        for query, options in [
            ("a bird that swims", SearchOptions(limit=3)),
            ("legs", SearchOptions(limit=6, mode="keyword")),
            ("pets at home", SearchOptions(limit=4, filter={"legs": {"$gte": 4}})),
        ]
    ]


def test_a_store_moves_to_postgresql_and_back_unchanged(
    tmp_path: Path,
    postgres_url: str,
    settings_for: Callable[..., Any],
    encoder: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source_dir = tmp_path / "data"
    appliance = Appliance(settings_for(), encoder=encoder)
    appliance.create_collection("animals")
    appliance.ingest.upsert(
        "animals", [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]
    )
    appliance.ingest.delete("animals", ["spider"])  # an issued vector id no row holds now
    appliance.create_collection("empty")
    with appliance.db.write() as session:
        key_store.create_key(session, "read", "reader")
        collection_id = appliance.collections.get("animals").id
        feedback_store.record_feedback(
            session,
            collection_id=collection_id,
            query_id="q1",
            query="cat",
            served=["cat", "dog"],
            doc_id="cat",
            relevance=2,
        )
    before_search = _search(appliance)
    appliance.collections.save_snapshots()
    appliance.db.close()
    before = _rows(source_dir / "appliance.sqlite3")

    # Nothing may be embedded: a copy that tried would fail here.
    monkeypatch.setattr(
        "appliance.embedding.encoder.Encoder.encode",
        lambda *a, **k: pytest.fail("migrate-store embedded something"),
    )
    runner = CliRunner()
    moved = runner.invoke(main, ["migrate-store", "--from", str(source_dir), "--to", postgres_url])
    assert moved.exit_code == 0, moved.output
    assert "vectors: 5 rows" in moved.output
    assert _rows(postgres_url) == before
    again = runner.invoke(main, ["migrate-store", "--from", str(source_dir), "--to", postgres_url])
    assert again.exit_code == 2 and "not empty" in again.output
    monkeypatch.undo()

    # The same data dir over the PostgreSQL store: its snapshots are exact there.
    on_postgres = Appliance(settings_for(database_url=postgres_url), encoder=encoder)
    try:
        assert _search(on_postgres) == before_search
        # Vector ids continue past the highest the source issued (the spider's).
        on_postgres.ingest.upsert("animals", [DocumentInput(id="owl", text="An owl hoots.")])
        owl = on_postgres.collections.get("animals").index.ids().max()
        assert owl > before["issued"][0]
        on_postgres.ingest.delete("animals", ["owl"])
    finally:
        on_postgres.db.close()

    back_dir = tmp_path / "back"
    back = runner.invoke(main, ["migrate-store", "--from", postgres_url, "--to", str(back_dir)])
    assert back.exit_code == 0, back.output
    after = _rows(back_dir / "appliance.sqlite3")
    assert after["issued"][0] == owl
    changed = ("collections", "query_log", "issued")  # generations; searches asked since
    assert {t: r for t, r in after.items() if t not in changed} == {
        t: r for t, r in before.items() if t not in changed
    }
    on_sqlite = Appliance(settings_for(data_dir=str(back_dir), database_url=""), encoder=encoder)
    try:
        assert _search(on_sqlite) == before_search
    finally:
        on_sqlite.db.close()


def test_backup_and_restore_refuse_a_postgresql_store(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_DATABASE_URL", postgres_url)
    runner = CliRunner()
    data = str(tmp_path / "data")
    for verb in ("backup", "restore"):
        result = runner.invoke(main, [verb, str(tmp_path / "copy"), "--data-dir", data])
        assert result.exit_code == 2 and "pg_dump" in result.stderr, result.output
