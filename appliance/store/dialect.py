"""What differs between the store's two dialects, SQLite and PostgreSQL, in one place: where a
store lives (a file or a URL) and the statements each spells its own way."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from appliance.errors import InvalidConfig

# The key of the advisory lock PostgreSQL writers hold for their transaction (any constant
# shared by every process on the database; "appl" in ASCII).
WRITE_LOCK_KEY = 0x6170706C
# Seconds a writer waits for its turn before failing, as SQLite's busy_timeout.
LOCK_TIMEOUT_MS = 30_000


# Where a store lives: a SQLite file, or a database URL (`postgresql+psycopg://...`).
StoreLocation = Path | str


def store_url(location: StoreLocation) -> URL:
    """The SQLAlchemy URL of a store: a path is a SQLite file; `postgresql://` and
    `postgres://` URLs use the psycopg (3) driver unless they name another."""
    if isinstance(location, Path):
        return make_url(f"sqlite:///{location}")
    try:
        url = make_url(location)
    except Exception as exc:  # ArgumentError: not a URL at all
        raise InvalidConfig(f"database_url {location!r} is not a database URL") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidConfig(
            f"database_url {url.render_as_string(hide_password=True)!r}: the store is SQLite "
            "or PostgreSQL (postgresql+psycopg://user@host:port/db)"
        )
    return url


def dialect_of(location: StoreLocation) -> str:
    """ "sqlite" or "postgresql"."""
    return store_url(location).get_backend_name()


def sqlite_path(location: StoreLocation) -> Path | None:
    """The file of a SQLite store; None for PostgreSQL."""
    url = store_url(location)
    if url.get_backend_name() != "sqlite":
        return None
    return location if isinstance(location, Path) else Path(url.database or "")


def describe(location: StoreLocation) -> str:
    """The store for messages: the file, or the URL without its password."""
    path = sqlite_path(location)
    if path is not None:
        return str(path)
    return store_url(location).render_as_string(hide_password=True)


def session_dialect(session: Session) -> str:
    """ "sqlite" or "postgresql": the dialect a session's unit of work runs on."""
    return session.get_bind().dialect.name


def insert_for(session: Session, table: Any) -> Any:
    """An INSERT with ON CONFLICT (`on_conflict_do_update`) in the session's dialect."""
    if session_dialect(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def postgres_engine(url: URL, *, writer: bool, **kwargs: Any) -> Engine:
    """An engine on a PostgreSQL store. Times are UTC on every connection (the columns have no
    zone, as SQLite's). Writers hold the store's write lock from BEGIN to COMMIT: they take
    turns as SQLite's do, so every write sees the one before it whole."""
    engine = create_engine(
        url,
        connect_args={"options": f"-c timezone=UTC -c lock_timeout={LOCK_TIMEOUT_MS}"},
        isolation_level="READ COMMITTED" if writer else "REPEATABLE READ",
        **kwargs,
    )
    if writer:

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")

    return engine


def rows_with_ids(
    session: Session, table: str, columns: Sequence[str], ids: Sequence[int]
) -> list[tuple[Any, ...]]:
    """`columns` of the rows of `table` whose id is among `ids`, by one statement whose text
    never changes (SQLite: `IN (SELECT value FROM json_each(?))` of one JSON parameter;
    PostgreSQL: `= ANY(%s)` of one array), passed to the driver as it is. An expanding `IN`
    is compiled anew for every length and bound id by id: a search's lookup of 100 vector ids
    took 330 us that way and 76 us this way (SQLite, measured here). JSON columns come back
    as the driver gives them (text on SQLite): see `json_value`."""
    connection = session.connection()
    selected = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        sql = f"SELECT {selected} FROM {table} WHERE id = ANY(%s)"
        parameter: Any = [int(i) for i in ids]
    else:
        sql = f"SELECT {selected} FROM {table} WHERE id IN (SELECT value FROM json_each(?))"
        parameter = json.dumps([int(i) for i in ids])
    # The session's own DBAPI connection (same transaction), its cursor used directly: rows in
    # one fetchall rather than a result object fetching them one at a time.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, (parameter,))
        return list(cursor.fetchall())
    finally:
        cursor.close()


_decode_json = msgspec.json.Decoder().decode


def json_value(value: Any) -> Any:
    """A JSON column read by `rows_with_ids`: text on SQLite, already decoded on PostgreSQL."""
    if not isinstance(value, str | bytes):
        return value
    try:
        return _decode_json(value)  # msgspec: a third of json.loads's time, ten per search
    except msgspec.DecodeError:
        return json.loads(value)  # what msgspec refuses and json wrote: NaN, Infinity
