"""The SQLite database: engines, pragmas and unit-of-work sessions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from appliance.store.migration import MIGRATIONS, Migrations


def _engine(path: Path, begin: str) -> Engine:
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
    """Two engines on one file: deferred transactions to read, immediate ones to write.

    Writers take the write lock at BEGIN, so two writers queue on busy_timeout instead of
    failing when a read snapshot cannot be upgraded; readers never block in WAL mode.
    """

    def __init__(self, path: Path, migrations: Migrations = MIGRATIONS) -> None:
        """Opens the file at this release's schema revision: created, stamped or upgraded
        (after a backup) as needed; a newer data dir raises SchemaTooNew."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        migrations.ensure(path)
        self._read_engine = _engine(path, "BEGIN")
        self._write_engine = _engine(path, "BEGIN IMMEDIATE")
        self._reader = sessionmaker(self._read_engine, expire_on_commit=False)
        self._writer = sessionmaker(self._write_engine, expire_on_commit=False)
        self._probe = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._probe_lock = threading.Lock()

    def data_version(self) -> int:
        """SQLite's `PRAGMA data_version` on a connection kept for it: it changes whenever any
        other connection, in this process or another, commits. A few microseconds, no
        transaction: lets a reader skip re-reading state that cannot have changed."""
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
            self._probe.close()
        self._read_engine.dispose()
        self._write_engine.dispose()
