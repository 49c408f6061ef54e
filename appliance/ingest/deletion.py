"""Deleting documents in bulk, by ids or by a metadata filter, through the one write path of
every delete (store commit, then index apply, under the collection's write lock); large ones
run as background jobs (`ingest/jobs.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.errors import InvalidRequest
from appliance.ingest.pipeline import IngestService
from appliance.search.filters import compile_filter
from appliance.store import documents as document_store
from appliance.store.documents import WriteResult

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from appliance.ingest.jobs import Job, JobRunner

MAX_DELETE_IDS = 100_000


@dataclass(frozen=True)
class DeleteOutcome:
    """Either the count deleted now, or the background job that deletes them."""

    deleted: int = 0
    job: Job | None = None


def check_request(filter: dict[str, Any] | None, ids: Sequence[str] | None) -> None:
    """Exactly one of `filter` and `ids`, and no filter that would match everything."""
    if (filter is None) == (ids is None):
        raise InvalidRequest(
            'send exactly one of "filter" (a metadata filter, as in search) and "ids" '
            "(a list of document ids)"
        )
    if filter is not None and not filter:
        raise InvalidRequest(
            "filter is empty, which would delete every document of the collection: send a "
            "filter that matches only what to delete, or delete the collection itself"
        )
    if ids is not None:
        if not ids:
            raise InvalidRequest("ids is empty; send at least one document id")
        if len(ids) > MAX_DELETE_IDS:
            raise InvalidRequest(
                f"ids has {len(ids)} entries; send at most {MAX_DELETE_IDS} per request, "
                "or a filter"
            )


def delete_matching(
    ingest: IngestService, collection: str, filter: dict[str, Any], limit: int | None = None
) -> int:
    """Delete the documents matching `filter` (at most `limit` of them, in row order) in one
    transaction; the ids are read inside it, so a concurrent write cannot slip between."""
    where = compile_filter(filter)
    if where is None:
        raise InvalidRequest("an empty filter matches every document; refusing to delete all")
    live = ingest.collections.get(collection)

    def delete(session: Session) -> tuple[int, WriteResult]:
        ids = document_store.matching_external_ids(session, live.id, where, limit)
        return document_store.delete_documents(session, live.id, ids)

    deleted, _ = live.commit(delete)
    return deleted


def count_matching(ingest: IngestService, collection: str, filter: dict[str, Any]) -> int:
    where = compile_filter(filter)
    if where is None:
        raise InvalidRequest("an empty filter matches every document")
    live = ingest.collections.get(collection)
    return live.read(lambda session: document_store.count_matching(session, live.id, where))


def delete_documents(
    ingest: IngestService,
    jobs: JobRunner,
    collection: str,
    *,
    filter: dict[str, Any] | None = None,
    ids: Sequence[str] | None = None,
    async_threshold: int,
) -> DeleteOutcome:
    """Delete by filter or by ids: now when at most `async_threshold` documents are concerned,
    else as a background job (its id answered at once)."""
    check_request(filter, ids)
    if ids is not None:
        unique = list(dict.fromkeys(ids))
        if len(unique) > async_threshold:
            return DeleteOutcome(job=jobs.submit_delete(collection, ids=unique))
        return DeleteOutcome(deleted=ingest.delete(collection, unique))
    assert filter is not None
    matched = count_matching(ingest, collection, filter)
    if matched > async_threshold:
        return DeleteOutcome(job=jobs.submit_delete(collection, filter=filter, total=matched))
    return DeleteOutcome(deleted=delete_matching(ingest, collection, filter))
