"""The store on both dialects, SQLite and PostgreSQL, through the same models: metadata filters
mean the same on each (one table of cases), writers take turns, a read is one snapshot, vector
ids are never reused, and the schema revisions run on each."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from appliance.errors import SchemaTooNew
from appliance.search.filters import compile_filter
from appliance.store import collections as collection_store
from appliance.store import documents as document_store
from appliance.store import keys as key_store
from appliance.store.database import Database
from appliance.store.dialect import StoreLocation
from appliance.store.migration import MIGRATIONS, Migrations, include_object, target_metadata
from appliance.store.schema import CollectionRow, DocumentRow, VectorRow

FAILS = Migrations(extra=[Path(__file__).parent / "fixtures" / "revisions" / "fails"])

METADATA: dict[str, dict[str, Any]] = {
    "d1": {
        "n": 1,
        "s": "a",
        "b": True,
        "nested": {"x": 5, "deep": {"y": "z"}},
        "nul": None,
        "f": 1.5,
        "k-1": 2,
    },
    "d2": {"n": 1.0, "s": "B", "b": False, "nested": {"x": "5"}, "tags": ["a", "b"]},
    "d3": {"n": "1", "s": "é", "b": 1, "nested": 7},
    "d4": {"n": 10, "s": "aa", "nul": 0},
    "d5": {},
    "d6": {"n": -2.5, "s": "", "b": None, "nested": {"deep": {"y": 3}}},
}
EVERY = set(METADATA)

# (filter, the documents it matches): the same answers on either store.
CASES: list[tuple[dict[str, Any], set[str]]] = [
    # Types: a number equals a number (1 = 1.0), never a string or a boolean.
    ({"n": 1}, {"d1", "d2"}),
    ({"n": "1"}, {"d3"}),
    ({"b": True}, {"d1"}),
    ({"b": False}, {"d2"}),
    ({"b": 1}, {"d3"}),
    ({"n": {"$in": [1, "1"]}}, {"d1", "d2", "d3"}),
    ({"n": {"$gte": 1, "$lte": 1}}, {"d1", "d2"}),
    ({"n": {"$gt": 0}}, {"d1", "d2", "d4"}),
    ({"n": {"$lt": 0}}, {"d6"}),
    ({"f": {"$gt": 1}}, {"d1"}),
    # Missing fields and null: null matches an explicit null only; $ne and $nin match the
    # documents without the field.
    ({"b": None}, {"d6"}),
    ({"nul": None}, {"d1"}),
    ({"nul": {"$ne": None}}, EVERY - {"d1"}),
    ({"n": {"$ne": 1}}, {"d3", "d4", "d5", "d6"}),
    ({"n": {"$nin": [1, 10]}}, {"d3", "d5", "d6"}),
    ({"missing": {"$nin": ["x"]}}, EVERY),
    ({"missing": {"$gt": 0}}, set()),
    ({"n": {"$in": []}}, set()),
    ({"n": {"$nin": []}}, EVERY),
    # Strings order by bytes, whatever the database's collation: "B" < "Z" < "a" < "aa" < "é".
    ({"s": {"$gt": "Z"}}, {"d1", "d3", "d4"}),
    ({"s": {"$lte": "a"}}, {"d1", "d2", "d6"}),
    ({"s": ""}, {"d6"}),
    ({"s": {"$gt": 0}}, set()),  # a string never orders against a number
    # Nested paths; a path through a scalar finds nothing.
    ({"nested.x": 5}, {"d1"}),
    ({"nested.x": "5"}, {"d2"}),
    ({"nested.x": {"$gte": 5}}, {"d1"}),
    ({"nested.deep.y": "z"}, {"d1"}),
    ({"nested.deep.y": {"$gt": 2}}, {"d6"}),
    ({"nested.x.q": 1}, set()),
    ({"nested": 7}, {"d3"}),
    # An object equals no scalar; a list matches when an element does (as MongoDB reads it).
    ({"nested": {"$gt": 1}}, {"d3"}),
    ({"tags": "a"}, {"d2"}),
    ({"tags": {"$ne": "a"}}, EVERY - {"d2"}),
    ({"tags": {"$in": ["b", "z"]}}, {"d2"}),
    ({"tags": {"$nin": ["b"]}}, EVERY - {"d2"}),
    ({"tags": {"$gt": "a"}}, {"d2"}),
    ({"tags": {"$gt": "b"}}, set()),
    ({"tags": {"$contains": "b"}}, {"d2"}),
    ({"s": {"$contains": "a"}}, set()),
    ({"tags": {"$all": ["a", "b"]}}, {"d2"}),
    ({"tags": {"$all": ["a", "c"]}}, set()),
    # $exists: present with any value, null included.
    ({"nul": {"$exists": True}}, {"d1", "d4"}),
    ({"nul": {"$exists": False}}, EVERY - {"d1", "d4"}),
    ({"nested.deep": {"$exists": True}}, {"d1", "d6"}),
    ({"k-1": 2}, {"d1"}),
    ({"$or": [{"n": {"$gt": 5}}, {"b": True}]}, {"d1", "d4"}),
    ({"$and": [{"n": 1}, {"s": {"$ne": "a"}}]}, {"d2"}),
]


@pytest.fixture
def location(store_dialect: str, database_url: str, tmp_path: Path) -> StoreLocation:
    return database_url or tmp_path / "appliance.sqlite3"


@pytest.fixture
def database(location: StoreLocation) -> Iterator[Database]:
    db = Database(location)
    yield db
    db.close()


@pytest.fixture
def collection_id(database: Database) -> int:
    with database.write() as session:
        row = collection_store.create_collection(
            session, name="c", backend="faiss", spec="Flat", options={}, model_id="m", dimension=2
        )
        for external_id, meta in METADATA.items():
            session.add(
                DocumentRow(
                    collection_id=row.id,
                    external_id=external_id,
                    text=external_id,
                    meta=meta,
                    content_hash=external_id,
                )
            )
        return row.id


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[str(spec) for spec, _ in CASES])
def test_filters_mean_the_same_on_both_dialects(
    database: Database, collection_id: int, spec: dict[str, Any], expected: set[str]
) -> None:
    with database.read() as session:
        ids = document_store.document_ids(session, collection_id, compile_filter(spec))
        found = set(
            session.scalars(select(DocumentRow.external_id).where(DocumentRow.id.in_(ids.tolist())))
        )
    assert found == expected


def test_metadata_and_times_read_back_as_written(database: Database, collection_id: int) -> None:
    with database.read() as session:
        rows = session.execute(
            select(DocumentRow.external_id, DocumentRow.meta, DocumentRow.updated_at)
        ).all()
    assert {external_id: meta for external_id, meta, _ in rows} == METADATA
    # Naive UTC on both (the columns have no zone): the keyword index's stamps agree.
    for _, _, updated_at in rows:
        assert updated_at.tzinfo is None
        assert abs(time.time() - updated_at.replace(tzinfo=UTC).timestamp()) < 120


def test_writers_take_turns(database: Database, collection_id: int) -> None:
    """Read-then-write transactions never interleave: no update is lost."""

    def add_one() -> None:
        for _ in range(5):
            with database.write() as session:
                row = session.get(CollectionRow, collection_id)
                assert row is not None
                seen = int(row.index_options.get("count", 0))
                time.sleep(0.005)
                row.index_options = {"count": seen + 1}

    threads = [threading.Thread(target=add_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with database.read() as session:
        row = session.get(CollectionRow, collection_id)
        assert row is not None and row.index_options == {"count": 20}


def test_a_read_sees_one_snapshot(database: Database, collection_id: int) -> None:
    with database.read() as session:
        before = collection_store.collection_generation(session, collection_id)
        with database.write() as writer:
            document_store.bump_generation(writer, collection_id)
        assert collection_store.collection_generation(session, collection_id) == before
    with database.read() as session:
        assert collection_store.collection_generation(session, collection_id) == before + 1


def test_vector_ids_are_never_reused(database: Database, collection_id: int) -> None:
    def add_vector() -> int:
        with database.write() as session:
            document_id = session.scalar(select(DocumentRow.id).limit(1))
            row = VectorRow(
                document_id=document_id,
                collection_id=collection_id,
                model_id="m",
                chunk_index=0,
                vector=b"\0" * 8,
            )
            session.add(row)
            session.flush()
            return row.id

    first = add_vector()
    with database.write() as session:
        session.execute(text("DELETE FROM vectors"))
    second = add_vector()
    assert second > first
    with database.read() as session:
        assert document_store.issued_vector_id(session) == second


def test_a_fresh_store_is_created_at_head_and_matches_the_models(
    database: Database, location: StoreLocation
) -> None:
    assert MIGRATIONS.status(location).state == "current"
    with database._read_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include_object})
        assert compare_metadata(context, target_metadata()) == []
        tables = set(inspect(connection).get_table_names())
    # FTS5 exists on SQLite only.
    assert ("documents_fts" in tables) == (database.dialect == "sqlite")


def test_a_newer_store_is_refused(database: Database, location: StoreLocation) -> None:
    with database.write() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(SchemaTooNew, match="9999_future"):
        Database(location)
    assert MIGRATIONS.status(location).state == "newer"


def test_a_failed_upgrade_changes_nothing(database: Database, location: StoreLocation) -> None:
    with database.write() as session:
        key_store.create_key(session, "read")
    with pytest.raises(RuntimeError, match="fails on purpose"):
        FAILS.upgrade(location)
    assert MIGRATIONS.status(location).state == "current"
    with database.read() as session:
        assert len(key_store.list_keys(session)) == 1
        tables = set(inspect(session.connection()).get_table_names())
    assert "half_done" not in tables


def test_revision_0002_upgrades_a_store_with_rows(location: StoreLocation) -> None:
    """0001 -> 0002 over real rows: each version's dimension backfilled from its vectors."""
    from alembic import command
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from appliance.store.dialect import store_url

    engine = create_engine(store_url(location), poolclass=NullPool)
    with engine.begin() as connection:
        command.upgrade(MIGRATIONS.config(connection), "0001")
        connection.execute(
            text(
                "INSERT INTO collections (id, name, index_backend, index_spec, index_options, "
                "model_id, generation, created_at) VALUES (1, 'c', 'faiss', 'Flat', '{}', 'm', 1, "
                "CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO documents (id, collection_id, external_id, text, metadata, "
                "content_hash, created_at, updated_at) VALUES (1, 1, 'a', 'x', '{}', 'h', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO vectors (document_id, collection_id, model_id, chunk_index, "
                "char_start, char_end, vector) VALUES (1, 1, 'm', 0, 0, 1, :vector)"
            ),
            {"vector": b"\0" * 12},
        )
    engine.dispose()
    assert MIGRATIONS.status(location).state == "pending"
    db = Database(location)
    try:
        with db.read() as session:
            rows = session.execute(
                text("SELECT model_id, state, dimension FROM embedding_versions")
            ).all()
    finally:
        db.close()
    assert [tuple(row) for row in rows] == [("m", "ready", 3)]


def test_a_nul_character_is_refused_clearly_on_postgresql(
    database: Database, collection_id: int
) -> None:
    import numpy as np

    from appliance.errors import InvalidRequest

    doc = document_store.NewDocument("z", "a\x00b", {"k": "v"}, "h")
    embedded = {"z": document_store.EmbeddedText([(0, 3)], np.zeros((1, 2), np.float32))}
    if database.dialect == "sqlite":
        with database.write() as session:
            document_store.upsert_documents(session, collection_id, "m", [doc], embedded)
        return
    with pytest.raises(InvalidRequest, match="NUL"), database.write() as session:
        document_store.upsert_documents(session, collection_id, "m", [doc], embedded)


def test_the_store_is_chosen_by_database_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.config import load_settings
    from appliance.errors import InvalidConfig
    from appliance.store.dialect import describe, dialect_of

    monkeypatch.delenv("APPLIANCE_DATABASE_URL", raising=False)
    settings = load_settings(Path("/nonexistent.toml"), data_dir=str(tmp_path))
    assert settings.database_location == tmp_path / "appliance.sqlite3"
    assert dialect_of(settings.database_location) == "sqlite"
    monkeypatch.setenv("APPLIANCE_DATABASE_URL", "postgresql://app:secret@db:5432/appliance")
    settings = load_settings(Path("/nonexistent.toml"), data_dir=str(tmp_path))
    assert dialect_of(settings.database_location) == "postgresql"
    assert describe(settings.database_location) == "postgresql+psycopg://app:***@db:5432/appliance"
    with pytest.raises(InvalidConfig, match="SQLite or PostgreSQL"):
        Database("mysql://db/appliance")


def test_json_values_decode_like_json_loads_nan_included() -> None:
    from appliance.store.dialect import json_value

    for written in ('{"a": [1, 2.5, "x", null, true]}', '"plain"', "3", '{"n": NaN}'):
        decoded, expected = json_value(written), json.loads(written)
        assert repr(decoded) == repr(expected)  # NaN != NaN: compare as written
    assert json_value({"already": "decoded"}) == {"already": "decoded"}  # PostgreSQL's JSONB
