"""Schema revisions of a data dir's database (Alembic): read them, and upgrade to this release's.

Opening a database checks its revision first (one SELECT when it is current). A fresh file is
created at head; a file of release 0.1.0 (its tables, no revision) is stamped with the first
revision; an older revision is upgraded in place after an online backup of the file beside it
(`appliance.sqlite3.pre-<revision>.bak`, kept after the upgrade: the way back to the release
before); a revision this code does not know is refused, since a newer release wrote it.

A PostgreSQL store (`database_url`) goes through the same revisions in one transaction under
the store's write lock; PostgreSQL's DDL is transactional, so a failed upgrade changes nothing.
No copy is taken there: backing a PostgreSQL database up is pg_dump's job, the log says so.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, inspect, text
from sqlalchemy.pool import NullPool

from appliance.errors import SchemaError, SchemaTooNew
from appliance.store.dialect import StoreLocation, describe, postgres_engine, sqlite_path, store_url

log = logging.getLogger(__name__)

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
VERSION_TABLE = "alembic_version"
# What release 0.1.0 created on every open: a file with all of them and no revision is one
# of its data dirs.
RELEASE_0_1_0_TABLES = frozenset(
    {
        "collections",
        "documents",
        "vectors",
        "embedding_versions",
        "query_log",
        "feedback",
        "jobs",
        "api_keys",
        "documents_fts",
    }
)
_FTS_PREFIX = "documents_fts"

State = Literal["current", "pending", "newer"]


def target_metadata() -> MetaData:
    """The models the revisions must add up to (every module that declares a table)."""
    from appliance.store import keys  # noqa: F401  (declares api_keys on Base)
    from appliance.store.schema import Base

    return Base.metadata


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Comparing models with a database: FTS5 tables are not models, leave them out."""
    return not (type_ == "table" and name is not None and name.startswith(_FTS_PREFIX))


@dataclass(frozen=True)
class SchemaStatus:
    path: StoreLocation
    # The recorded revision; None when none is (a fresh file, or a 0.1.0 data dir).
    current: str | None
    head: str
    state: State
    # A 0.1.0 data dir: its tables, no revision; it is stamped, not rebuilt.
    unrevisioned: bool = False

    @property
    def current_label(self) -> str:
        if self.current is not None:
            return self.current
        if self.unrevisioned:
            return "none (a release 0.1.0 data dir, stamped with 0001 on upgrade)"
        return "none (no database yet: created at head on upgrade or first start)"


@dataclass(frozen=True)
class Upgrade:
    path: StoreLocation
    from_revision: str | None
    to_revision: str
    # The database as it was before the upgrade; None when nothing was there to keep.
    backup: Path | None = None
    created: bool = False
    stamped: bool = False

    @property
    def changed(self) -> bool:
        return self.from_revision != self.to_revision


def backup_path(database: Path, revision: str) -> Path:
    """Where the database is copied before it is upgraded to `revision`."""
    return database.with_name(f"{database.name}.pre-{revision}.bak")


class Migrations:
    """The revisions under the package's `migrations/versions`, plus any `extra` version
    directories (tests add revisions of their own there)."""

    def __init__(self, extra: Sequence[Path] = ()) -> None:
        self.version_locations = [SCRIPT_LOCATION / "versions", *extra]

    def config(self, connection: Connection | None = None) -> Config:
        """Alembic's configuration, built here: no alembic.ini travels with the package."""
        config = Config()
        config.set_main_option("script_location", str(SCRIPT_LOCATION))
        config.set_main_option("path_separator", "os")
        config.set_main_option(
            "version_locations", os.pathsep.join(str(p) for p in self.version_locations)
        )
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    @cached_property
    def script(self) -> ScriptDirectory:
        return ScriptDirectory.from_config(self.config())

    @cached_property
    def head(self) -> str:
        head = self.script.get_current_head()
        if head is None:
            raise SchemaError(f"no schema revisions under {SCRIPT_LOCATION}")
        return head

    def knows(self, revision: str) -> bool:
        return any(script.revision == revision for script in self.script.walk_revisions())

    def status(self, location: StoreLocation) -> SchemaStatus:
        """The database's revision against head; reads only (a missing file stays missing)."""
        database = sqlite_path(location)
        if database is None:
            engine = _postgres_reader(location)
            try:
                with engine.connect() as connection:
                    current, unrevisioned = _recorded_in(connection, location)
            finally:
                engine.dispose()
            return self._status(location, current, unrevisioned)
        if not database.exists():
            return SchemaStatus(database, None, self.head, "pending")
        uri = f"{database.resolve().as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as connection:
            current, unrevisioned = _recorded(connection, database)
        return self._status(database, current, unrevisioned)

    def _status(
        self, database: StoreLocation, current: str | None, unrevisioned: bool
    ) -> SchemaStatus:
        if current == self.head:
            state: State = "current"
        elif current is None or self.knows(current):
            state = "pending"
        else:
            state = "newer"
        return SchemaStatus(database, current, self.head, state, unrevisioned)

    def ensure(self, location: StoreLocation) -> Upgrade | None:
        """Bring the database to head, or refuse it; None when it was already there.

        The common case costs one SELECT; only a database that is not at head takes the
        write lock (and then looks again: another process may have upgraded it meanwhile)."""
        database = sqlite_path(location)
        if database is None:
            engine = _postgres_reader(location)
            try:
                with engine.connect() as connection:
                    current, _ = _recorded_in(connection, location)
            finally:
                engine.dispose()
            if current == self.head:
                return None
            if current is not None and not self.knows(current):
                raise _too_new(location, current, self.head)
            return self.upgrade(location)
        if database.exists():
            with closing(sqlite3.connect(database)) as connection:
                try:
                    rows = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
                except sqlite3.OperationalError:
                    rows = []  # no version table: fresh, or a 0.1.0 data dir
            if [row[0] for row in rows] == [self.head]:
                return None
            if len(rows) == 1 and not self.knows(rows[0][0]):
                raise _too_new(database, rows[0][0], self.head)
        return self.upgrade(database)

    def upgrade(self, location: StoreLocation) -> Upgrade:
        """Upgrade the database to head in one transaction, after a backup of it."""
        database = sqlite_path(location)
        if database is None:
            return self._upgrade_postgres(location)
        database.parent.mkdir(parents=True, exist_ok=True)
        engine = _migration_engine(database)
        try:
            with engine.connect() as connection, connection.begin():
                raw = connection.connection.dbapi_connection
                assert isinstance(raw, sqlite3.Connection)
                current, unrevisioned = _recorded(raw, database)
                status = self._status(database, current, unrevisioned)
                if status.state == "newer":
                    raise _too_new(database, current, self.head)
                if status.state == "current":
                    return Upgrade(database, current, self.head)
                fresh = current is None and not unrevisioned
                backup = None
                # Stamping a 0.1.0 data dir only adds the version table: nothing to keep.
                if not fresh and (current is not None or self.head != FIRST_REVISION):
                    backup = _backup(database, backup_path(database, self.head))
                config = self.config(connection)
                if unrevisioned:
                    command.stamp(config, FIRST_REVISION)
                command.upgrade(config, "head")
                _check_foreign_keys(raw)
        finally:
            engine.dispose()
        done = Upgrade(
            database,
            current,
            self.head,
            backup=backup,
            created=fresh,
            stamped=unrevisioned,
        )
        _log_upgrade(done)
        return done

    def _upgrade_postgres(self, location: StoreLocation) -> Upgrade:
        # The writers' engine: the store's write lock from BEGIN, so no write lands in between
        # and two processes starting at once upgrade it once.
        engine = postgres_engine(store_url(location), writer=True, poolclass=NullPool)
        try:
            with engine.connect() as connection, connection.begin():
                current, unrevisioned = _recorded_in(connection, location)
                status = self._status(location, current, unrevisioned)
                if status.state == "newer":
                    raise _too_new(location, current, self.head)
                if status.state == "current":
                    return Upgrade(location, current, self.head)
                config = self.config(connection)
                if unrevisioned:
                    command.stamp(config, FIRST_REVISION)
                command.upgrade(config, "head")
        finally:
            engine.dispose()
        done = Upgrade(
            location,
            current,
            self.head,
            created=current is None and not unrevisioned,
            stamped=unrevisioned,
        )
        _log_upgrade(done)
        return done


MIGRATIONS = Migrations()


def ensure_schema(location: StoreLocation) -> Upgrade | None:
    return MIGRATIONS.ensure(location)


def _postgres_reader(location: StoreLocation) -> Engine:
    return postgres_engine(store_url(location), writer=False, poolclass=NullPool)


def _recorded_in(connection: Connection, location: StoreLocation) -> tuple[str | None, bool]:
    """`_recorded` through SQLAlchemy (a PostgreSQL store: the tables of its search path)."""
    tables = set(inspect(connection).get_table_names())
    revisions: list[str] = []
    if VERSION_TABLE in tables:
        revisions = list(connection.scalars(text(f"SELECT version_num FROM {VERSION_TABLE}")))
    return _revision_of(tables, revisions, location)


def _recorded(connection: sqlite3.Connection, database: Path) -> tuple[str | None, bool]:
    """(the recorded revision or None, whether it is an unrevisioned 0.1.0 data dir)."""
    tables = {
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    revisions: list[str] = []
    if VERSION_TABLE in tables:
        revisions = [
            row[0] for row in connection.execute(f"SELECT version_num FROM {VERSION_TABLE}")
        ]
    return _revision_of(tables, revisions, database)


def _revision_of(
    tables: set[str], revisions: list[str], database: StoreLocation
) -> tuple[str | None, bool]:
    label = describe(database)
    if len(revisions) == 1:
        return revisions[0], False
    if len(revisions) > 1:
        raise SchemaError(
            f"{label} records several schema revisions ({', '.join(revisions)}); "
            "this appliance keeps one line of revisions: restore a backup"
        )
    ours = {t for t in tables - {VERSION_TABLE} if not t.startswith(f"{_FTS_PREFIX}_")}
    if not ours:
        return None, False
    missing = RELEASE_0_1_0_TABLES - ours
    if missing:
        raise SchemaError(
            f"{label} has tables ({', '.join(sorted(ours))}) but no schema revision and "
            f"not all of release 0.1.0's (missing {', '.join(sorted(missing))}): it is not an "
            "appliance data dir, or a damaged one; point --data-dir elsewhere or restore a backup"
        )
    return None, True


def _too_new(database: StoreLocation, current: str | None, head: str) -> SchemaTooNew:
    kept = (
        "the pre-upgrade .bak file beside the database"
        if sqlite_path(database) is not None
        else "a pg_dump of the database"
    )
    return SchemaTooNew(
        f"{describe(database)} is at schema revision {current}, which this release does not "
        f"know (its newest is {head}): a newer release wrote it. Run that release again, or "
        f"restore a backup taken before the upgrade ({kept})"
    )


def _migration_engine(database: Path) -> Engine:
    # One connection, closed with the upgrade: its pragmas are not the Database's.
    engine = create_engine(f"sqlite:///{database}", poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=FULL")
        # Off while tables are rebuilt: SQLite changes most columns by copying a table and
        # dropping the old one, and that drop would cascade into every row that refers to it.
        # (A no-op inside a transaction, so it is set here, before BEGIN.)
        dbapi_connection.execute("PRAGMA foreign_keys=OFF")
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # The write lock for the whole check-backup-upgrade: no write lands in between.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _check_foreign_keys(connection: sqlite3.Connection) -> None:
    broken = connection.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise SchemaError(
            f"the upgrade would leave {len(broken)} rows whose references are broken "
            f"(first: {broken[0]}); nothing was changed"
        )


def _backup(database: Path, target: Path) -> Path:
    """An online copy, taken while the caller holds the write lock: exactly what the upgrade
    starts from (a WAL reader sees the last commit, and no other can land). Written beside the
    target and renamed, so a .bak is always whole."""
    partial = target.with_name(f"{target.name}.partial")
    partial.unlink(missing_ok=True)
    # Its own connection: a backup read through the lock holder's own connection never ends.
    with closing(sqlite3.connect(database)) as source, closing(sqlite3.connect(partial)) as copy:
        source.backup(copy)
        # One self-contained file, readable without its -wal.
        copy.execute("PRAGMA journal_mode=DELETE")
    with _fd(partial, os.O_RDONLY) as fd:
        os.fsync(fd)
    os.replace(partial, target)
    with _fd(target.parent, os.O_RDONLY) as fd:
        os.fsync(fd)
    log.info("database backed up to %s before its schema upgrade", target)
    return target


@contextmanager
def _fd(path: Path, flags: int) -> Iterator[int]:
    fd = os.open(path, flags)
    try:
        yield fd
    finally:
        os.close(fd)


def _log_upgrade(done: Upgrade) -> None:
    if done.created:
        log.info(
            "new database %s created at schema revision %s", describe(done.path), done.to_revision
        )
    elif sqlite_path(done.path) is None:
        log.warning(
            "PostgreSQL store %s upgraded from schema revision %s to %s; no copy was kept "
            "(back a PostgreSQL store up with pg_dump before upgrading the release)",
            describe(done.path),
            done.from_revision or "none",
            done.to_revision,
        )
    elif done.stamped and done.backup is None:
        log.warning(
            "database %s is release 0.1.0's (no schema revision): stamped with %s",
            done.path,
            done.to_revision,
        )
    elif done.changed:
        log.warning(
            "database %s upgraded from schema revision %s to %s; as it was before, it is "
            "kept in %s",
            done.path,
            done.from_revision or "none (release 0.1.0)",
            done.to_revision,
            done.backup,
        )
