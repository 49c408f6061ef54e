"""The cheap "did anything commit?" probe that lets a search skip re-reading its collection,
and change detection across processes (collection generations) on both store dialects."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from appliance.store.database import Database
from tests.conftest import sqlite_only


def test_data_version_changes_on_commits_only(appliance: Appliance, store_dialect: str) -> None:
    sqlite_only(store_dialect, "PRAGMA data_version is SQLite's shortcut")
    db: Database = appliance.db
    before = db.data_version()
    with db.read() as session:
        session.execute(text("SELECT count(*) FROM collections"))
    assert db.data_version() == before
    appliance.create_collection("c")
    assert db.data_version() != before


def test_without_a_free_probe_every_call_may_have_changed(
    appliance: Appliance, store_dialect: str
) -> None:
    if store_dialect == "sqlite":
        return  # the exact probe, above
    db: Database = appliance.db
    appliance.create_collection("c")
    checked = appliance.collections.get("c").checked_version
    seen = {db.data_version() for _ in range(5)}
    # PostgreSQL: never "unchanged", so readers always compare generations.
    assert len(seen) == 5
    assert checked not in seen


def test_a_write_by_another_process_is_seen_after_the_fast_path(
    open_appliance: Callable[..., Appliance], store_dialect: str
) -> None:
    server = open_appliance()
    server.create_collection("c")
    server.ingest.upsert("c", [DocumentInput(id="a", text="apples are red fruit")])
    assert [h.id for h in server.search.search("c", "fruit").results] == ["a"]
    checked = server.collections.get("c").checked_version
    if store_dialect == "sqlite":
        # Nothing committed since: the collection is not re-read.
        assert server.collections.get("c").checked_version == checked
    other = open_appliance()  # another process on the same store
    other.ingest.upsert("c", [DocumentInput(id="b", text="bananas are yellow fruit")])
    assert sorted(h.id for h in server.search.search("c", "fruit").results) == ["a", "b"]
    other.ingest.delete("c", ["a"])
    assert [h.id for h in server.search.search("c", "fruit").results] == ["b"]
