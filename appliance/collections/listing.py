"""Listing a collection's documents page by page (a scroll): a stable order by row id and an
opaque cursor naming the last row of the previous page, optionally only those matching a
filter."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from appliance.collections.manager import CollectionManager, StoredDocument
from appliance.errors import InvalidRequest
from appliance.search.filters import compile_filter
from appliance.store import documents as document_store

_CURSOR_VERSION = 1


@dataclass(frozen=True)
class DocumentPage:
    documents: list[StoredDocument]
    # Pass it back for the next page; None when this page is the last.
    next_cursor: str | None


def encode_cursor(after_id: int) -> str:
    raw = json.dumps({"v": _CURSOR_VERSION, "after": after_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The row id a cursor names (0: from the start); InvalidRequest for one not made here."""
    if not cursor:
        return 0
    refused = InvalidRequest(
        f"cursor {cursor[:40]!r} is not one this server gave out: pass the next_cursor of the "
        "previous page unchanged, or leave cursor out to start from the first document"
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise refused from None
    if not isinstance(decoded, dict) or decoded.get("v") != _CURSOR_VERSION:
        raise refused
    after = decoded.get("after")
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise refused
    return after


def parse_filter_param(text: str | None) -> dict[str, Any] | None:
    """A filter passed in a query string: the JSON of the search filter, URL-encoded."""
    if text is None or not text.strip():
        return None
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise InvalidRequest(
            f"filter is not valid JSON ({exc}); send the search filter syntax, URL-encoded, "
            'e.g. filter=%7B%22lang%22%3A%22en%22%7D for {"lang":"en"}'
        ) from None
    if not isinstance(spec, dict):
        raise InvalidRequest(
            'filter must be a JSON object such as {"lang": "en"} (URL-encoded), '
            f"got {type(spec).__name__}"
        )
    return spec


def list_documents(
    collections: CollectionManager,
    name: str,
    *,
    limit: int,
    cursor: str | None = None,
    filter: dict[str, Any] | None = None,
) -> DocumentPage:
    """One page of a collection's documents, in a stable order."""
    after = decode_cursor(cursor)
    where = compile_filter(filter)
    live = collections.get(name)
    # One more than asked: whether a next page exists, without a count.
    rows = live.read(
        lambda session: document_store.documents_after(session, live.id, after, limit + 1, where)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return DocumentPage(
        documents=[
            StoredDocument(
                id=row.external_id,
                text=row.text,
                metadata=row.meta,
                content_hash=row.content_hash,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
            for row in rows
        ],
        next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
    )
