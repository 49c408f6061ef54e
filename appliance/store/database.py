"""The store's database: a SQLite file in the data dir, or PostgreSQL; engines, pragmas and
unit-of-work sessions.

Both dialects give the same guarantees through the same models: a write is one transaction,
acknowledged after its commit; writers take turns (SQLite's write lock, a PostgreSQL advisory
lock taken at BEGIN); a read sees one snapshot for its whole transaction (a deferred SQLite
transaction in WAL mode, PostgreSQL's REPEATABLE READ) and never blocks a writer.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from appliance.store.dialect import StoreLocation, postgres_engine, sqlite_path, store_url
from appliance.store.migration import MIGRATIONS, Migrations


def _sqlite_engine(path: Path, begin: str) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that returned survives power loss too, not only a process kill.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


class Database:
    """Two engines on one store: one to read, one to write.

    On SQLite, reads are deferred transactions and writes immediate ones: writers take the
    write lock at BEGIN, so two writers queue on busy_timeout instead of failing when a read
    snapshot cannot be upgraded; readers never block in WAL mode. On PostgreSQL, the same
    through an advisory lock and REPEATABLE READ snapshots.
    """

    def __init__(self, location: StoreLocation, migrations: Migrations = MIGRATIONS) -> None:
        """Opens the store at this release's schema revision: created, stamped or upgraded
        (after a backup) as needed; a newer one raises SchemaTooNew."""
        self.url = store_url(location)
        self.dialect = self.url.get_backend_name()
        path = sqlite_path(location)
        self.path = path
        self._probe: sqlite3.Connection | None = None
        self._probe_lock = threading.Lock()
        # PostgreSQL has no free change probe: each call is a number never seen before.
        self._versions = itertools.count(1)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            migrations.ensure(path)
            self._read_engine = _sqlite_engine(path, "BEGIN")
            self._write_engine = _sqlite_engine(path, "BEGIN IMMEDIATE")
            self._probe = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        else:
            migrations.ensure(location)
            self._read_engine = postgres_engine(self.url, writer=False)
            self._write_engine = postgres_engine(self.url, writer=True)
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)
        self._writer = sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def location(self) -> StoreLocation:
        return (
            self.path if self.path is not None else self.url.render_as_string(hide_password=False)
        )

    def data_version(self) -> int:
        """A number that changes whenever any connection, in this process or another, may
        have committed since the last call: lets a reader skip re-reading state that cannot
        have changed (a few microseconds, no transaction).

        SQLite's `PRAGMA data_version` on a connection kept for it is exact. PostgreSQL has no
        such free probe, so there every call answers "maybe changed" (a new number) and
        readers compare what they keep, as they must anyway: each collection's generation,
        which every write bumps, is the change detection; this is only SQLite's shortcut."""
        if self._probe is None:
            return next(self._versions)
        with self._probe_lock:
            row = self._probe.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with self._writer() as session, session.begin():
            yield session

    def close(self) -> None:
        with self._probe_lock:
            if self._probe is not None:
                self._probe.close()
        self._read_engine.dispose()
        self._write_engine.dispose()
