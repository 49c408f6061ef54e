"""A write that finds the disk full gets 507 with a clear message and changes nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import event

from appliance.api.app import create_app
from appliance.service import Appliance
from appliance.store.disk import is_disk_full


def _state(client: TestClient[Any]) -> dict[str, Any]:
    info = client.get("/collections/default").json()
    return {key: info[key] for key in ("documents", "vectors_indexed", "generation")}


@pytest.fixture
def full_disk(appliance: Appliance) -> Iterator[Any]:
    """Caps the database file at its current size plus a few pages, as a full disk would."""
    engine = appliance.db._write_engine

    def cap(dbapi_connection: Any, _record: Any) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 2}")

    def enable() -> None:
        event.listen(engine, "connect", cap)
        engine.dispose()

    def disable() -> None:
        event.remove(engine, "connect", cap)
        engine.dispose()

    yield enable, disable
    if event.contains(engine, "connect", cap):
        disable()


def test_disk_full_write_is_507_and_changes_nothing(appliance: Appliance, full_disk: Any) -> None:
    enable, disable = full_disk
    appliance.ensure_collection("default")
    first = {"documents": [{"id": "a", "text": "a small first document"}]}
    # Metadata is stored, not embedded: 200 kB of it needs far more than two free pages.
    big = {"documents": [{"id": "big", "text": "a big one", "metadata": {"n": "x" * 200_000}}]}
    with TestClient(create_app(appliance.settings, appliance)) as client:
        assert client.put("/collections/default/documents", json=first).status_code == 200
        before = _state(client)
        enable()
        response = client.put("/collections/default/documents", json=big)
        assert response.status_code == 507, response.text
        body = response.json()
        assert body["error"] == "insufficient_storage"
        assert "disk" in body["detail"] and "nothing was changed" in body["detail"]
        assert "Traceback" not in response.text
        assert _state(client) == before
        assert client.get("/collections/default/documents/big").status_code == 404
        # Reads still work on a full disk.
        assert client.get("/collections/default/documents/a").status_code == 200
        disable()
        assert client.put("/collections/default/documents", json=big).status_code == 200
        assert _state(client)["documents"] == before["documents"] + 1


def test_is_disk_full_recognises_sqlite_full() -> None:
    raw = sqlite3.connect(":memory:")
    raw.execute("CREATE TABLE t (x BLOB)")
    raw.execute("PRAGMA max_page_count = 3")
    with pytest.raises(sqlite3.OperationalError) as caught:
        raw.execute("INSERT INTO t VALUES (zeroblob(100000))")
    assert is_disk_full(caught.value)
    assert not is_disk_full(sqlite3.OperationalError("no such table: x"))
    assert not is_disk_full(ValueError("database or disk is full"))
