"""An operator's work on a data dir that needs no model and no index: API keys, the state of
background jobs, the schema revision, and holding the dir while a server runs on it. The CLI
calls these; it never opens the store or takes a lock itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from appliance.config import Settings
from appliance.datadir_lock import hold_data_dir
from appliance.errors import JobNotFound
from appliance.store import keys as key_store
from appliance.store.database import Database
from appliance.store.dialect import describe
from appliance.store.migration import MIGRATIONS, SchemaStatus, Upgrade
from appliance.store.schema import JobRow
from appliance.store.transfer import TransferReport, copy_store

# A background job as recorded (the API's `GET /jobs/{id}` reads the same row).
Job = JobRow


@dataclass(frozen=True)
class KeyInfo:
    """An API key as an operator sees it: never the key itself, nor its hash."""

    key_id: str
    scope: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


def generate_key() -> str:
    """A new key in the appliance's format; nothing is stored (for APPLIANCE_ADMIN_KEY_FILE)."""
    return key_store.generate_key()


class DataDirService:
    """The data dir's store for one command: opened on first use, closed by `close`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._db: Database | None = None

    @property
    def _database(self) -> Database:
        if self._db is None:
            # A data dir of a newer release raises SchemaTooNew here.
            self._db = Database(self.settings.database_location)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> DataDirService:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # API keys

    def create_key(self, scope: str, label: str = "") -> tuple[KeyInfo, str]:
        """A new key with `scope`: (what is stored about it, the key itself, to show once)."""
        with self._database.write() as session:
            row, key = key_store.create_key(session, scope, label)
            info = _key_info(row)
        return info, key

    def list_keys(self) -> list[KeyInfo]:
        with self._database.read() as session:
            return [_key_info(row) for row in key_store.list_keys(session)]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key by its id; False if no active key has it. A running server refuses
        the key at its next request."""
        with self._database.write() as session:
            return key_store.revoke_key(session, key_id)

    # Background jobs

    def job(self, job_id: str) -> Job:
        """A job as last committed by the server running it (JobNotFound if there is none)."""
        with self._database.read() as session:
            job = session.get(JobRow, job_id)
        if job is None:
            raise JobNotFound(f"job {job_id!r} does not exist")
        return job


def _key_info(row: key_store.ApiKeyRow) -> KeyInfo:
    return KeyInfo(row.key_id, row.scope, row.label, row.created_at, row.revoked_at)


def schema_status(settings: Settings) -> SchemaStatus:
    """The data dir's schema revision beside this release's; changes nothing."""
    return MIGRATIONS.status(settings.database_location)


def upgrade_schema(settings: Settings) -> Upgrade:
    """Upgrade the data dir's schema to this release's, after a backup of its database;
    refused (DataDirBusy) while a server or a restore holds the data dir."""
    with hold_data_dir(settings.data_path, "`appliance migrate`"):
        return MIGRATIONS.upgrade(settings.database_location)


@contextmanager
def serving_data_dir(settings: Settings) -> Iterator[None]:
    """Hold the data dir for a server's whole run: a second server, a restore or a migration
    on it is refused (DataDirBusy) until the block ends."""
    with hold_data_dir(settings.data_path, "`appliance serve`"):
        yield


def store_description(settings: Settings) -> str:
    """Where the store is, for messages (a file path, or a URL without its password)."""
    return describe(settings.database_location)


def store_location(value: str) -> tuple[Path | None, Path | str]:
    """(the data dir, or None for a URL; where the store is) of a `migrate-store` end."""
    if "://" in value:
        return None, value
    return Path(value), Settings(data_dir=value).database_path


def migrate_store(source: str, target: str) -> TransferReport:
    """Copy the store at `source` (a data dir or a database URL) into the empty one at
    `target`, every row with its id and every vector as stored (never re-embedded). Refused
    (DataDirBusy) while a server holds a data dir involved."""
    source_dir, source_store = store_location(source)
    target_dir, target_store = store_location(target)
    with ExitStack() as held:
        for data_dir in {d for d in (source_dir, target_dir) if d is not None}:
            data_dir.mkdir(parents=True, exist_ok=True)
            held.enter_context(hold_data_dir(data_dir, "`appliance migrate-store`"))
        return copy_store(source_store, target_store)
