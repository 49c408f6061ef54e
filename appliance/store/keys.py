"""API keys: each has one scope (read < write < admin) and is stored only as a sha256 hash.

A key reads `lsa_<key id>_<secret>`. The key id is public (listed, used to revoke); the secret
is 32 random bytes from `secrets` and is shown once, when the key is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from appliance.errors import InvalidRequest
from appliance.store.schema import Base, utcnow

SCOPES = ("read", "write", "admin")
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
_PREFIX = "lsa"


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    # sha256 of the whole key, hex. A fast hash is enough here (a slow KDF such as bcrypt
    # protects low-entropy passwords): the secret has 256 random bits, so a leaked hash
    # cannot be brute-forced, and a request pays microseconds, not milliseconds, to check it.
    key_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


@dataclass(frozen=True)
class ActiveKey:
    key_id: str
    key_hash: str
    scope: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def scope_allows(granted: str, needed: str) -> bool:
    """admin implies write implies read."""
    return _RANK.get(granted, -1) >= _RANK[needed]


def key_id_of(key: str) -> str:
    """The public id of a presented key: the one inside a key of ours, or for a key an
    operator made (`admin_key_file`), one derived from its hash."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != _PREFIX or not key_id or not secret:
        return "x" + hash_key(key)[:11]
    return key_id


def generate_key() -> str:
    """A new key in our format, `lsa_<key id>_<secret>`; nothing is stored."""
    return f"{_PREFIX}_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def store_key(session: Session, key: str, scope: str, label: str = "") -> ApiKeyRow:
    """Store the hash of `key` with `scope`; the key itself is never stored."""
    if scope not in _RANK:
        raise InvalidRequest(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    row = ApiKeyRow(key_id=key_id_of(key), key_hash=hash_key(key), scope=scope, label=label[:200])
    session.add(row)
    session.flush()
    return row


def create_key(session: Session, scope: str, label: str = "") -> tuple[ApiKeyRow, str]:
    """A new key: (its row, the key itself). The key is not stored; show it once."""
    key = generate_key()
    return store_key(session, key, scope, label), key


def list_keys(session: Session) -> list[ApiKeyRow]:
    return list(session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)))


def revoke_key(session: Session, key_id: str) -> bool:
    """Revoke a key by its id; False if no active key has that id."""
    changed = session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def active_keys(session: Session) -> dict[str, ActiveKey]:
    """Every key not revoked, by key id."""
    rows = session.execute(
        select(ApiKeyRow.key_id, ApiKeyRow.key_hash, ApiKeyRow.scope).where(
            ApiKeyRow.revoked_at.is_(None)
        )
    )
    return {key_id: ActiveKey(key_id, key_hash, scope) for key_id, key_hash, scope in rows}


def match_key(keys: dict[str, ActiveKey], presented: str) -> ActiveKey | None:
    """The active key a client presented, or None. The hashes are compared in constant time,
    so response timing says nothing about how much of a guess was right."""
    found = keys.get(key_id_of(presented))
    expected = found.key_hash if found else "0" * 64
    same = hmac.compare_digest(hash_key(presented), expected)
    return found if found is not None and same else None
