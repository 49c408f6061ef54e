"""Schema revisions: a data dir of the release before opens with the newest code and keeps
everything; a newer one is refused; upgrades back the database up first and are all or nothing."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import create_engine

from appliance.api.app import create_app
from appliance.cli import main
from appliance.config import Settings
from appliance.errors import SchemaError, SchemaTooNew
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from appliance.store import feedback as feedback_store
from appliance.store import keys as key_store
from appliance.store.database import Database
from appliance.store.migration import (
    FIRST_REVISION,
    MIGRATIONS,
    Migrations,
    backup_path,
    include_object,
    target_metadata,
)
from appliance.verify import verify

FIXTURES = Path(__file__).parent / "fixtures"
RELEASE_0_1_0 = FIXTURES / "datadir-0.1.0"
ADDS_NOTE = Migrations(extra=[FIXTURES / "revisions" / "adds_note"])
FAILS = Migrations(extra=[FIXTURES / "revisions" / "fails"])
# Every table whose rows are the data (query_log is a cache of what was asked, jobs was empty).
DATA_TABLES = ("collections", "documents", "vectors", "api_keys", "feedback", "documents_fts")


def _copy_release_0_1_0(tmp_path: Path) -> Path:
    """A copy to open: the fixture itself stays as 0.1.0 left it (even a read adds -shm)."""
    data = tmp_path / "data"
    shutil.copytree(RELEASE_0_1_0, data)
    return data


def _rows(database: Path, tables: tuple[str, ...] = DATA_TABLES) -> dict[str, list[Any]]:
    with closing(sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)) as db:
        return {
            table: db.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid").fetchall()
            for table in tables
        }


def _revision(database: Path) -> list[str]:
    with closing(sqlite3.connect(database)) as db:
        return [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]


def _schema(database: Path) -> dict[str, str]:
    """Every table, index and trigger's SQL, whitespace folded, the version table left out."""
    with closing(sqlite3.connect(database)) as db:
        return {
            name: " ".join((sql or "").split())
            for name, sql in db.execute("SELECT name, sql FROM sqlite_master")
            if "alembic_version" not in name
        }


def _set_revision(database: Path, revision: str) -> None:
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))


def test_a_fresh_data_dir_is_created_at_head(tmp_path: Path) -> None:
    database = tmp_path / "data" / "appliance.sqlite3"
    Database(database).close()
    assert _revision(database) == [MIGRATIONS.head]
    assert MIGRATIONS.status(database).state == "current"
    assert list(database.parent.glob("*.bak")) == []


def test_the_first_revision_is_release_0_1_0_schema_exactly(tmp_path: Path) -> None:
    database = tmp_path / "first.sqlite3"
    engine = create_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        command.upgrade(MIGRATIONS.config(connection), FIRST_REVISION)
    engine.dispose()
    assert _revision(database) == [FIRST_REVISION]
    assert _schema(database) == _schema(_copy_release_0_1_0(tmp_path) / "appliance.sqlite3")


def test_the_models_match_the_head_revision(tmp_path: Path) -> None:
    """A model changed without a revision (or the other way round) fails here, with the diff."""
    database = tmp_path / "head.sqlite3"
    Database(database).close()
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": include_object})
        assert compare_metadata(context, target_metadata()) == []
    engine.dispose()


def test_a_release_0_1_0_data_dir_opens_with_everything_kept(
    tmp_path: Path, open_appliance: Callable[..., Appliance]
) -> None:
    expected = json.loads((RELEASE_0_1_0 / "expected.json").read_text())
    data = _copy_release_0_1_0(tmp_path)
    database = data / "appliance.sqlite3"
    before = _rows(database)
    assert {table: len(rows) for table, rows in before.items()} == {
        table: expected["rows"][table] for table in DATA_TABLES
    }
    assert MIGRATIONS.status(database).unrevisioned

    app = open_appliance(data_dir=str(data))

    assert _revision(database) == [MIGRATIONS.head]
    # Every document, vector (bytes and all), key, judgment and FTS row, as 0.1.0 wrote them.
    assert _rows(database) == before
    if MIGRATIONS.head == FIRST_REVISION:
        # Recognised by its tables and only stamped: nothing changed that needs a backup.
        assert list(data.glob("*.bak")) == []
    else:
        assert _rows(backup_path(database, MIGRATIONS.head)) == before
    for name, backend in (("animals", "hnswlib"), ("stdlib", "faiss")):
        live = app.collections.get(name)
        assert live.config.backend == backend
        vectors = [row for row in before["vectors"] if row[3] == live.id]
        assert len(live.index) == len(vectors)
    for collection, by_mode in expected["top_ids"].items():
        for mode, by_query in by_mode.items():
            for query, ids in by_query.items():
                outcome = app.search.search(
                    collection, query, options=SearchOptions(limit=5, mode=mode)
                )
                assert [hit.id for hit in outcome.results] == ids, (collection, mode, query)
    with app.db.read() as session:
        key = key_store.match_key(key_store.active_keys(session), expected["api_key"])
        qrels, _ = feedback_store.judgments(session, app.collections.get("animals").id)
    assert key is not None and key.scope == "admin"
    judgment = expected["feedback"]
    assert list(qrels.values()) == [{judgment["doc_id"]: judgment["relevance"]}]
    with TestClient(create_app(app.settings, app)) as client:
        assert client.get("/collections").status_code == 401
        authorised = client.get(
            "/collections", headers={"Authorization": f"Bearer {expected['api_key']}"}
        )
        assert authorised.status_code == 200
    assert verify(app.settings).ok
    # Revision 0002: each collection's model has a version row recording its dimension, and
    # no row claims to be active (the collection's model_id says which is).
    with closing(sqlite3.connect(database)) as db:
        versions = db.execute(
            "SELECT collection_id, state, dimension FROM embedding_versions ORDER BY 1"
        ).fetchall()
    assert versions == [(1, "ready", 384), (2, "ready", 384)]
    # Nothing here opened the fixture itself.
    assert sorted(path.name for path in RELEASE_0_1_0.iterdir()) == [
        "README.md",
        "appliance.sqlite3",
        "expected.json",
        "indexes",
    ]


def test_a_newer_data_dir_is_refused_naming_both_revisions(
    tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for()
    Database(settings.database_path).close()
    _set_revision(settings.database_path, "9999_future")
    schema = _schema(settings.database_path)

    with pytest.raises(SchemaTooNew) as refused:
        Database(settings.database_path)
    assert "9999_future" in refused.value.detail and MIGRATIONS.head in refused.value.detail
    with pytest.raises(SchemaTooNew):
        MIGRATIONS.upgrade(settings.database_path)
    with pytest.raises(SchemaTooNew):
        create_app(settings)
    result = CliRunner().invoke(main, ["serve", "--data-dir", settings.data_dir])
    assert result.exit_code == 2
    assert "schema_too_new" in result.stderr and "9999_future" in result.stderr
    # Refused without a write.
    assert _revision(settings.database_path) == ["9999_future"]
    assert _schema(settings.database_path) == schema
    assert list(settings.data_path.glob("*.bak")) == []


def test_a_database_of_someone_else_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "other.sqlite3"
    with closing(sqlite3.connect(database)) as db:
        db.execute("CREATE TABLE documents (id INTEGER PRIMARY KEY)")
    with pytest.raises(SchemaError, match="missing api_keys, collections"):
        Database(database)


def _migrate(*args: str) -> Any:
    return CliRunner().invoke(main, ["migrate", *args], catch_exceptions=False)


def test_migrate_check_exit_codes_and_upgrade(tmp_path: Path) -> None:
    data = _copy_release_0_1_0(tmp_path)
    check = _migrate("--check", "--data-dir", str(data))
    assert check.exit_code == 1, check.output
    assert "current: none (a release 0.1.0 data dir" in check.stdout
    assert f"head:    {MIGRATIONS.head}" in check.stdout

    upgraded = _migrate("--data-dir", str(data))
    assert upgraded.exit_code == 0, upgraded.output
    assert f"-> {MIGRATIONS.head}" in upgraded.stdout
    assert _migrate("--check", "--data-dir", str(data)).exit_code == 0
    assert "nothing to do" in _migrate("--data-dir", str(data)).stdout

    _set_revision(data / "appliance.sqlite3", "9999_future")
    newer = _migrate("--check", "--data-dir", str(data))
    assert newer.exit_code == 2
    assert "9999_future" in newer.stdout and "9999_future" in newer.stderr
    refused = _migrate("--data-dir", str(data))
    assert refused.exit_code == 2 and "schema_too_new" in refused.stderr

    empty = tmp_path / "empty"
    assert _migrate("--check", "--data-dir", str(empty)).exit_code == 1
    assert not empty.exists()  # --check changes nothing
    created = _migrate("--data-dir", str(empty))
    assert f"schema none -> {MIGRATIONS.head} (a new database)" in created.stdout
    assert _revision(empty / "appliance.sqlite3") == [MIGRATIONS.head]


def test_an_upgrade_backs_the_database_up_first(tmp_path: Path) -> None:
    """From the first revision to a later one, through Database as every opener does."""
    data = _copy_release_0_1_0(tmp_path)
    database = data / "appliance.sqlite3"
    Database(database).close()  # stamped with the first revision
    before = _rows(database)

    Database(database, migrations=ADDS_NOTE).close()

    assert _revision(database) == ["t0002_note"]
    backup = backup_path(database, "t0002_note")
    assert backup.name == "appliance.sqlite3.pre-t0002_note.bak"
    assert _revision(backup) == [MIGRATIONS.head]
    assert _rows(backup) == before
    assert "note" not in _schema(backup)["collections"]
    # The table copy kept every row that refers to a collection (foreign keys were off).
    after = _rows(database)
    assert [row[:-1] for row in after["collections"]] == before["collections"]
    assert {table: after[table] for table in DATA_TABLES[1:]} == {
        table: before[table] for table in DATA_TABLES[1:]
    }
    # Kept after the commit: the way back to the release before.
    assert backup.is_file() and not backup.with_name(backup.name + ".partial").exists()


def test_a_0_1_0_data_dir_is_stamped_backed_up_and_upgraded_in_one_step(tmp_path: Path) -> None:
    data = _copy_release_0_1_0(tmp_path)
    database = data / "appliance.sqlite3"
    before = _rows(database)

    done = ADDS_NOTE.upgrade(database)

    assert (done.from_revision, done.to_revision, done.stamped) == (None, "t0002_note", True)
    assert done.backup == backup_path(database, "t0002_note")
    # The backup is 0.1.0's file as it was: no version table, every row.
    assert "alembic_version" not in {name for name in _schema(done.backup)}
    assert _rows(done.backup) == before
    assert _revision(database) == ["t0002_note"]


def test_a_failed_upgrade_changes_nothing(tmp_path: Path) -> None:
    database = tmp_path / "appliance.sqlite3"
    db = Database(database)
    with db.write() as session:
        key_store.create_key(session, "read")
    db.close()
    before = _rows(database, ("api_keys",))
    schema = _schema(database)

    with pytest.raises(RuntimeError, match="fails on purpose"):
        FAILS.upgrade(database)

    assert _revision(database) == [MIGRATIONS.head]
    assert _schema(database) == schema  # no half_done table
    assert _rows(database, ("api_keys",)) == before
    assert _rows(backup_path(database, "t0002_fails"), ("api_keys",)) == before
    Database(database).close()  # still opens with the real revisions
