"""Running out of disk: SQLite's "database or disk is full" becomes one error type (507)."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import OperationalError

from appliance.errors import ApplianceError


class StorageFull(ApplianceError):
    code = "insufficient_storage"


def is_disk_full(exc: BaseException) -> bool:
    """SQLITE_FULL, however SQLAlchemy wrapped it (also a max_page_count limit)."""
    original = exc.orig if isinstance(exc, OperationalError) else exc
    if not isinstance(original, sqlite3.OperationalError):
        return False
    code = getattr(original, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(original)


STORAGE_FULL_DETAIL = (
    "the write was refused because the disk holding the data directory is full; nothing was "
    "changed. Free some space (or raise the volume's size) and send it again"
)
