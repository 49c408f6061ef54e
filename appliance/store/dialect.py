"""What differs between the store's two dialects, SQLite and PostgreSQL, in one place: where a
store lives (a file or a URL) and the statements each spells its own way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
