"""Backups of a data directory and their restore: a consistent SQLite copy, the index snapshots
and a `manifest.json` with the sha256 of every file; a restore checks them all before it
replaces anything.

A backup is safe while a server runs on the data directory: the database is copied with
SQLite's online backup API, and index snapshots are only an accelerator (an index missing
from a backup, or older than its database, is rebuilt or caught up from the store at start).
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from appliance.checksums import file_sha256
from appliance.datadir_lock import hold_data_dir
from appliance.errors import ApplianceError

if TYPE_CHECKING:
    from appliance.service import Appliance

log = logging.getLogger(__name__)

DATABASE = "appliance.sqlite3"
INDEXES = "indexes"
MANIFEST = "manifest.json"
FORMAT = 1
# SQLite's side files: a stale -wal beside a restored database would be replayed into it.
_DATABASE_SIDE_FILES = (DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", f"{DATABASE}-journal")
_SNAPSHOT_COPY_ATTEMPTS = 3


class BackupError(ApplianceError):
    code = "backup_error"


@dataclass(frozen=True)
class BackupReport:
    directory: Path
    files: dict[str, str]
    bytes: int


def refuse_postgres_store(database_url: str) -> None:
    """Backups here copy a SQLite store; a PostgreSQL store is backed up by PostgreSQL."""
    if database_url:
        raise BackupError(
            "the store is in PostgreSQL (database_url): back it up with pg_dump and restore it "
            "with pg_restore; the data dir holds only derived indexes, rebuilt from the store "
            "at start"
        )


def _overlap(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def create_backup(
    data_dir: Path, dest: Path, *, appliance: Appliance | None = None
) -> BackupReport:
    """Write a backup of `data_dir` to `dest`, a new or empty directory outside the data dir.

    With a running `appliance`, its in-memory indexes are snapshotted first so the backup
    holds them as they are now."""
    database = data_dir / DATABASE
    if not database.is_file():
        raise BackupError(f"no database at {database}: is {data_dir} an appliance data dir?")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupError(f"{dest} must be a new or empty directory")
    if _overlap(dest, data_dir):
        raise BackupError(f"{dest} overlaps the data dir {data_dir}; back up somewhere else")
    if appliance is not None:
        appliance.collections.save_snapshots()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        # Snapshots first, then the database: the store is then never older than an index,
        # and start-up catches an index up with newer rows (never the other way round).
        _copy_snapshots(data_dir / INDEXES, staging / INDEXES)
        _copy_database(database, staging / DATABASE)
        files = {
            path.relative_to(staging).as_posix(): file_sha256(path)
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        size = sum((staging / name).stat().st_size for name in files)
        manifest = {
            "format": FORMAT,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "bytes": size,
            "files": files,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if dest.exists():
            dest.rmdir()
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("backup of %s written to %s: %d files, %d bytes", data_dir, dest, len(files), size)
    return BackupReport(dest, files, size)


def _copy_database(source: Path, target: Path) -> None:
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        with dst:
            src.backup(dst)
        # One self-contained file; the appliance turns WAL back on when it opens it.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()


def _copy_snapshots(source: Path, target: Path) -> None:
    target.mkdir()
    if not source.is_dir():
        return
    for snapshot in sorted(source.iterdir()):
        # .staging-* and .retired-* are a snapshot save in progress, never a snapshot.
        if snapshot.name.startswith(".") or not snapshot.is_dir():
            continue
        for _ in range(_SNAPSHOT_COPY_ATTEMPTS):
            copy = target / snapshot.name
            shutil.rmtree(copy, ignore_errors=True)
            try:
                shutil.copytree(snapshot, copy)
                if _snapshot_intact(copy):
                    break
            except OSError:
                pass  # a save renamed the directory under us: copy the new one
        else:
            # The store is the truth: a restore rebuilds this index from the stored vectors.
            shutil.rmtree(target / snapshot.name, ignore_errors=True)
            log.warning("snapshot %s kept changing while copied: left out", snapshot)


def _snapshot_intact(directory: Path) -> bool:
    try:
        files = json.loads((directory / MANIFEST).read_text())["files"]
        return all(file_sha256(directory / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def read_manifest(source: Path) -> dict[str, str]:
    """The backup's files and checksums; raises BackupError for anything unsafe or missing."""
    if not source.is_dir():
        raise BackupError(f"{source} is not a directory")
    try:
        manifest: Any = json.loads((source / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{source} has no readable {MANIFEST}: not a backup") from exc
    if manifest.get("format") != FORMAT or not isinstance(files, dict):
        raise BackupError(f"{source}/{MANIFEST} is not a format {FORMAT} backup manifest")
    for name, digest in files.items():
        if not isinstance(name, str) or not isinstance(digest, str):
            raise BackupError(f"{MANIFEST} lists a malformed entry: {name!r}")
        parts = PurePosixPath(name).parts
        if (
            not parts
            or name.startswith("/")
            or "\\" in name
            or any(part in ("", ".", "..") for part in parts)
            or parts[0] not in (DATABASE, INDEXES)
            or (parts[0] == DATABASE and len(parts) != 1)
        ):
            raise BackupError(f"{MANIFEST} names an unsafe path {name!r}; refusing the backup")
    if DATABASE not in files:
        raise BackupError(f"{MANIFEST} lists no {DATABASE}")
    return files


def restore_backup(source: Path, data_dir: Path) -> BackupReport:
    """Replace the data dir's database and index snapshots with the backup at `source`.

    Every file is copied into a staging directory and checked against the manifest first; on
    any mismatch the data dir is left exactly as it was. Refused (DataDirBusy) while a server
    or another process holds the data dir: a server would go on writing to the database file
    moved away, and lose every write it acknowledged after the swap."""
    files = read_manifest(source)
    if _overlap(source, data_dir):
        raise BackupError(f"{source} overlaps the data dir {data_dir}; restore from elsewhere")
    with hold_data_dir(data_dir, "`appliance restore`"):
        return _restore(source, files, data_dir)


def _restore(source: Path, files: dict[str, str], data_dir: Path) -> BackupReport:
    staging = data_dir / f".restore-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        (staging / INDEXES).mkdir()
        for name, digest in files.items():
            copied = staging / name
            copied.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(source / name, copied)
            except OSError as exc:
                raise BackupError(f"backup file {name} is missing or unreadable: {exc}") from exc
            if file_sha256(copied) != digest:
                raise BackupError(
                    f"backup file {name} fails its sha256 check; nothing was restored"
                )
        _check_database(staging / DATABASE)
        size = sum((staging / name).stat().st_size for name in files)
        _swap_in(staging, data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("restored %s into %s: %d files", source, data_dir, len(files))
    return BackupReport(data_dir, files, size)


def _check_database(path: Path) -> None:
    connection = sqlite3.connect(path)
    try:
        verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"the backup's database is unreadable: {exc}") from exc
    finally:
        connection.close()
    if verdict != "ok":
        raise BackupError(f"the backup's database fails its integrity check: {verdict}")


def _swap_in(staging: Path, data_dir: Path) -> None:
    """Move the current database and indexes aside, the staged ones in; undo on failure.
    Renames within the data dir, so this also works when the data dir is a mount point."""
    retired = staging / ".previous"
    retired.mkdir()
    moved: list[str] = []
    placed: list[str] = []
    try:
        for name in (*_DATABASE_SIDE_FILES, INDEXES):
            if (data_dir / name).exists():
                (data_dir / name).rename(retired / name)
                moved.append(name)
        for name in (DATABASE, INDEXES):
            (staging / name).rename(data_dir / name)
            placed.append(name)
    except OSError as exc:
        for name in placed:
            (data_dir / name).rename(staging / name)
        for name in moved:
            (retired / name).rename(data_dir / name)
        raise BackupError(f"could not move the restored files into {data_dir}: {exc}") from exc
