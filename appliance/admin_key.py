"""The first admin key of a server: taken from a file the operator provides (a mounted secret,
`admin_key_file`), or generated on the first start beyond loopback and written once into the
data dir, readable only by the appliance's user. Either way only its hash reaches the store,
and the log names where the key is, never the key.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import select

from appliance.config import Settings
from appliance.errors import InvalidConfig
from appliance.store import keys as key_store
from appliance.store.database import Database

log = logging.getLogger(__name__)

GENERATED_KEY_FILE = "admin.key"
# An operator's own key must be hard to guess: as long as a token_urlsafe(24).
MIN_KEY_CHARS = 32


def read_key_file(path: Path) -> str:
    """The key in an operator's key file (surrounding whitespace stripped)."""
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise InvalidConfig(f"cannot read the admin key file {path}: {exc}") from exc
    if len(key) < MIN_KEY_CHARS or any(c.isspace() for c in key):
        raise InvalidConfig(
            f"the admin key file {path} must hold one key of at least {MIN_KEY_CHARS} "
            "characters and no spaces; make one with `appliance keys generate`"
        )
    return key


def _write_private(path: Path, key: str) -> None:
    """Create `path` holding `key`, mode 0600 from its first byte; never overwrite."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def ensure_admin_key(settings: Settings, is_public: bool) -> Path | None:
    """Make sure the store holds the operator's key, or on a first start beyond loopback a
    generated one. Returns the file that holds the key when one was added, else None."""
    db = Database(settings.database_location)
    try:
        if settings.admin_key_file:
            path = Path(settings.admin_key_file)
            key = read_key_file(path)
            with db.write() as session:
                # Added once: a key the store already knows (even revoked) is left as it is,
                # so revoking the operator's key sticks across restarts.
                known = session.scalar(
                    select(key_store.ApiKeyRow.id).where(
                        key_store.ApiKeyRow.key_hash == key_store.hash_key(key)
                    )
                )
                if known is not None:
                    return None
                key_store.store_key(session, key, "admin", label=f"admin key file {path}")
            log.info("admin key from %s hashed into the store", path)
            return path
        if not is_public or settings.allow_open_network:
            return None
        with db.write() as session:
            if session.scalar(select(key_store.ApiKeyRow.id).limit(1)) is not None:
                return None  # not a first start: keys exist (or were all revoked)
            path = settings.data_path / GENERATED_KEY_FILE
            if path.exists():
                # Written by an earlier first start whose store is gone (a fresh database
                # in the same volume): that key stays the admin key.
                key = read_key_file(path)
            else:
                key = key_store.generate_key()
                _write_private(path, key)
            row = key_store.store_key(session, key, "admin", label=f"generated into {path}")
        log.warning(
            "first start on %s with no API key: generated admin key %s, written to %s "
            "(readable only by this user). Read it there, store it safely, then delete the "
            "file; every request needs a key (Authorization: Bearer KEY)",
            settings.host,
            row.key_id,
            path,
        )
        return path
    finally:
        db.close()
