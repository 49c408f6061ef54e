"""The cheap "did anything commit?" probe that lets a search skip re-reading its collection."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from appliance.store.database import Database


def test_data_version_changes_on_commits_only(appliance: Appliance) -> None:
    db: Database = appliance.db
    before = db.data_version()
    with db.read() as session:
        session.execute(text("SELECT count(*) FROM collections"))
    assert db.data_version() == before
    appliance.create_collection("c")
    assert db.data_version() != before


def test_a_write_by_another_process_is_seen_after_the_fast_path(
    open_appliance: Callable[..., Appliance],
) -> None:
    server = open_appliance()
    server.create_collection("c")
    server.ingest.upsert("c", [DocumentInput(id="a", text="apples are red fruit")])
    assert [h.id for h in server.search.search("c", "fruit").results] == ["a"]
    checked = server.collections.get("c").checked_version
    # Nothing committed since: the collection is not re-read.
    assert server.collections.get("c").checked_version == checked
    other = open_appliance()  # another process on the same store
    other.ingest.upsert("c", [DocumentInput(id="b", text="bananas are yellow fruit")])
    assert sorted(h.id for h in server.search.search("c", "fruit").results) == ["a", "b"]
    other.ingest.delete("c", ["a"])
    assert [h.id for h in server.search.search("c", "fruit").results] == ["b"]
