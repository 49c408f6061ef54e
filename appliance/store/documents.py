"""Repository functions over documents and their vectors. Every function takes the session of
the caller's unit of work; none commits on its own."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from appliance.errors import InvalidRequest
from appliance.store.dialect import json_value, rows_with_ids, session_dialect
from appliance.store.schema import CollectionRow, DocumentRow, VectorRow, utcnow

# SQLite allows 32,766 bound parameters, PostgreSQL 65,535; stay well under both.
_CHUNK = 10_000


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ConcurrentWrite(Exception):
    """Another writer changed a document between reading it and writing it: retry."""


@dataclass(frozen=True)
class NewDocument:
    external_id: str
    text: str
    meta: dict[str, Any]
    content_hash: str


@dataclass(frozen=True)
class ExistingDocument:
    id: int
    content_hash: str
    has_vectors: bool


@dataclass(frozen=True)
class EmbeddedText:
    """A document's chunks: character spans and one unit vector per span."""

    spans: list[tuple[int, int]]
    vectors: np.ndarray


class ChunkHit(NamedTuple):
    """Which document and span a vector is (a tuple: a search makes one per candidate)."""

    document_id: int
    chunk_index: int
    char_start: int
    char_end: int


@dataclass(frozen=True)
class KeywordSource:
    """What the keyword index reads of a document: its title (metadata "title", as the FTS5
    table took it), its text, and the `updated_at` stamp of this version (microseconds)."""

    id: int
    title: str
    text: str
    stamp: int


@dataclass
class WriteResult:
    """What a committed write changed, for the live indexes to apply."""

    added_ids: list[int] = field(default_factory=list)
    added_vectors: np.ndarray | None = None
    removed_ids: list[int] = field(default_factory=list)
    generation: int = 0
    # Documents written (their new versions) and documents deleted, for the keyword index.
    written_documents: list[KeywordSource] = field(default_factory=list)
    deleted_document_ids: list[int] = field(default_factory=list)


_EPOCH = datetime(1970, 1, 1)


def stamp_of(moment: datetime) -> int:
    """A version stamp from `updated_at`: microseconds since the epoch, UTC. Aware and naive
    (as read back from a store without time zones) give the same number."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def title_of(meta: dict[str, Any] | None) -> str:
    title = (meta or {}).get("title")
    if title is None:
        return ""
    return title if isinstance(title, str) else str(title)


def existing_documents(
    session: Session, collection_id: int, model_id: str, external_ids: Sequence[str]
) -> dict[str, ExistingDocument]:
    found: dict[str, ExistingDocument] = {}
    for chunk in _chunks(external_ids):
        rows = session.execute(
            select(DocumentRow.external_id, DocumentRow.id, DocumentRow.content_hash, VectorRow.id)
            .outerjoin(
                VectorRow,
                (VectorRow.document_id == DocumentRow.id)
                & (VectorRow.model_id == model_id)
                & (VectorRow.chunk_index == 0),
            )
            .where(DocumentRow.collection_id == collection_id, DocumentRow.external_id.in_(chunk))
        )
        for external_id, doc_id, digest, vector_id in rows:
            found[external_id] = ExistingDocument(doc_id, digest, vector_id is not None)
    return found


def bump_generation(session: Session, collection_id: int) -> int:
    generation = session.execute(
        update(CollectionRow)
        .where(CollectionRow.id == collection_id)
        .values(generation=CollectionRow.generation + 1)
        .returning(CollectionRow.generation)
    ).scalar_one()
    return int(generation)


def upsert_documents(
    session: Session,
    collection_id: int,
    model_id: str,
    documents: Sequence[NewDocument],
    vectors: dict[str, EmbeddedText],
) -> WriteResult:
    """Insert or update documents by external id; store the given chunk vectors (for each
    document whose content changed or has none for this model). Unchanged texts keep theirs."""
    if session_dialect(session) == "postgresql":
        _refuse_nul(documents)
    existing = existing_documents(
        session, collection_id, model_id, [doc.external_id for doc in documents]
    )
    for doc in documents:
        found = existing.get(doc.external_id)
        if doc.external_id not in vectors and (
            found is None or found.content_hash != doc.content_hash or not found.has_vectors
        ):
            raise ConcurrentWrite(f"document {doc.external_id!r} changed while being embedded")
    now = utcnow()
    new_rows = [
        {
            "collection_id": collection_id,
            "external_id": doc.external_id,
            "text": doc.text,
            "meta": doc.meta,
            "content_hash": doc.content_hash,
            "created_at": now,
            "updated_at": now,
        }
        for doc in documents
        if doc.external_id not in existing
    ]
    doc_ids = {ext: found.id for ext, found in existing.items()}
    if new_rows:
        inserted = session.execute(
            insert(DocumentRow).returning(
                DocumentRow.id, DocumentRow.external_id, sort_by_parameter_order=True
            ),
            new_rows,
        )
        doc_ids.update({external_id: doc_id for doc_id, external_id in inserted})
    updates = [
        {
            "id": existing[doc.external_id].id,
            "text": doc.text,
            "meta": doc.meta,
            "content_hash": doc.content_hash,
            "updated_at": now,
        }
        for doc in documents
        if doc.external_id in existing
    ]
    if updates:
        session.execute(update(DocumentRow), updates)

    result = WriteResult()
    stamp = stamp_of(now)
    result.written_documents = [
        KeywordSource(doc_ids[doc.external_id], title_of(doc.meta), doc.text, stamp)
        for doc in documents
    ]
    stale_docs = [
        existing[ext].id for ext in vectors if ext in existing and existing[ext].has_vectors
    ]
    for chunk in _chunks(stale_docs):
        stale_ids = list(
            session.scalars(
                select(VectorRow.id).where(
                    VectorRow.document_id.in_(chunk), VectorRow.model_id == model_id
                )
            )
        )
        result.removed_ids.extend(stale_ids)
        session.execute(delete(VectorRow).where(VectorRow.id.in_(stale_ids)))
    # Other models' vectors of a changed text are stale too: an embedding version being built
    # (or kept for rollback) must embed the new text, never serve the old one.
    changed_docs = [
        existing[doc.external_id].id
        for doc in documents
        if doc.external_id in existing
        and existing[doc.external_id].content_hash != doc.content_hash
    ]
    for chunk in _chunks(changed_docs):
        session.execute(
            delete(VectorRow).where(
                VectorRow.document_id.in_(chunk), VectorRow.model_id != model_id
            )
        )
    rows = [
        {
            "document_id": doc_ids[ext],
            "collection_id": collection_id,
            "model_id": model_id,
            "chunk_index": position,
            "char_start": start,
            "char_end": end,
            "vector": np.ascontiguousarray(embedded.vectors[position], dtype=np.float32).tobytes(),
        }
        for ext, embedded in vectors.items()
        for position, (start, end) in enumerate(embedded.spans)
    ]
    if rows:
        inserted_vectors = session.execute(
            insert(VectorRow).returning(VectorRow.id, sort_by_parameter_order=True), rows
        )
        result.added_ids = [int(vector_id) for (vector_id,) in inserted_vectors]
        result.added_vectors = np.concatenate(
            [embedded.vectors for embedded in vectors.values()]
        ).astype(np.float32)
    result.generation = bump_generation(session, collection_id)
    return result


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _refuse_nul(documents: Sequence[NewDocument]) -> None:
    """PostgreSQL stores no NUL character in text or JSONB: a clear refusal, not a driver
    error half way through the batch."""
    for doc in documents:
        if _has_nul(doc.external_id) or _has_nul(doc.text) or _has_nul(doc.meta):
            raise InvalidRequest(
                f"document {doc.external_id!r} contains the NUL character (U+0000), which a "
                "PostgreSQL store cannot hold; remove it"
            )


def delete_documents(
    session: Session, collection_id: int, external_ids: Sequence[str]
) -> tuple[int, WriteResult]:
    """Delete documents (and, by cascade, all their vectors). Returns (deleted count, changes)."""
    result = WriteResult()
    deleted = 0
    for chunk in _chunks(external_ids):
        doc_ids = list(
            session.scalars(
                select(DocumentRow.id).where(
                    DocumentRow.collection_id == collection_id, DocumentRow.external_id.in_(chunk)
                )
            )
        )
        if not doc_ids:
            continue
        result.removed_ids.extend(
            session.scalars(select(VectorRow.id).where(VectorRow.document_id.in_(doc_ids)))
        )
        session.execute(delete(VectorRow).where(VectorRow.document_id.in_(doc_ids)))
        session.execute(delete(DocumentRow).where(DocumentRow.id.in_(doc_ids)))
        result.deleted_document_ids.extend(doc_ids)
        deleted += len(doc_ids)
    if deleted:
        result.generation = bump_generation(session, collection_id)
    return deleted, result


def get_document(session: Session, collection_id: int, external_id: str) -> DocumentRow | None:
    return session.scalars(
        select(DocumentRow).where(
            DocumentRow.collection_id == collection_id, DocumentRow.external_id == external_id
        )
    ).one_or_none()


def count_documents(session: Session, collection_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(DocumentRow)
            .where(DocumentRow.collection_id == collection_id)
        )
        or 0
    )


def chunks_by_vector_ids(session: Session, vector_ids: Sequence[int]) -> dict[int, ChunkHit]:
    """Which document and span each vector is, without loading the documents themselves."""
    found: dict[int, ChunkHit] = {}
    columns = ("id", "document_id", "chunk_index", "char_start", "char_end")
    for chunk in _chunks(vector_ids):
        for vector_id, document_id, index, start, end in rows_with_ids(
            session, VectorRow.__tablename__, columns, chunk
        ):
            found[vector_id] = ChunkHit(document_id, index, start, end)
    return found


@dataclass(frozen=True)
class StoredText:
    """What a search answer shows of a document (plain columns: no ORM object to build)."""

    id: int
    external_id: str
    text: str
    meta: dict[str, Any]


def documents_by_ids(session: Session, document_ids: Sequence[int]) -> dict[int, StoredText]:
    found: dict[int, StoredText] = {}
    columns = ("id", "external_id", "text", "metadata")
    for chunk in _chunks(document_ids):
        for doc_id, external_id, text, meta in rows_with_ids(
            session, DocumentRow.__tablename__, columns, chunk
        ):
            found[doc_id] = StoredText(doc_id, external_id, text, json_value(meta))
    return found


def document_stamps(session: Session, collection_id: int) -> dict[int, int]:
    """Document id -> version stamp (`stamp_of(updated_at)`) of every document of a collection:
    what the keyword index compares itself with."""
    rows = session.execute(
        select(DocumentRow.id, DocumentRow.updated_at).where(
            DocumentRow.collection_id == collection_id
        )
    )
    return {int(doc_id): stamp_of(updated_at) for doc_id, updated_at in rows}


def keyword_sources(session: Session, document_ids: Sequence[int]) -> list[KeywordSource]:
    """The given documents as the keyword index reads them (missing ones are left out)."""
    found: list[KeywordSource] = []
    for chunk in _chunks(document_ids):
        rows = session.execute(
            select(
                DocumentRow.id, DocumentRow.text, DocumentRow.meta, DocumentRow.updated_at
            ).where(DocumentRow.id.in_(chunk))
        )
        found.extend(
            KeywordSource(int(doc_id), title_of(meta), text, stamp_of(updated_at))
            for doc_id, text, meta, updated_at in rows
        )
    return found


def document_ids(session: Session, collection_id: int, where: ColumnElement[bool]) -> np.ndarray:
    """Ids of the collection's documents matching a compiled filter."""
    statement = select(DocumentRow.id).where(DocumentRow.collection_id == collection_id, where)
    return np.fromiter(session.scalars(statement), dtype=np.int64)


def vector_ids(
    session: Session,
    collection_id: int,
    model_id: str,
    where: ColumnElement[bool] | None = None,
) -> np.ndarray:
    """Ids of the collection's vectors for a model, optionally only documents matching `where`."""
    statement = select(VectorRow.id).where(
        VectorRow.collection_id == collection_id, VectorRow.model_id == model_id
    )
    if where is not None:
        statement = statement.join(DocumentRow, DocumentRow.id == VectorRow.document_id).where(
            where
        )
    return np.fromiter(session.scalars(statement), dtype=np.int64)


def max_vector_id(session: Session, collection_id: int, model_id: str) -> int:
    """The highest vector id of a collection for a model (0 if none): one index probe."""
    found = session.scalar(
        select(func.max(VectorRow.id)).where(
            VectorRow.collection_id == collection_id, VectorRow.model_id == model_id
        )
    )
    return int(found or 0)


def issued_vector_id(session: Session) -> int:
    """The highest vector id the store ever issued, in any collection (0 if none): ids are
    never reused (SQLite AUTOINCREMENT, a PostgreSQL sequence), so no index may hold more."""
    if session_dialect(session) == "postgresql":
        issued = session.execute(
            sql_text("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM vectors_id_seq")
        ).scalar()
    else:
        issued = session.execute(
            sql_text("SELECT seq FROM sqlite_sequence WHERE name = 'vectors'")
        ).scalar()
    return int(issued or 0)


def load_vectors(
    session: Session, ids: Iterable[int], dimension: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) for the given vector ids, in id order."""
    id_list = sorted(int(i) for i in ids)
    out_ids: list[int] = []
    blobs: list[bytes] = []
    for chunk in _chunks(id_list):
        for vector_id, blob in session.execute(
            select(VectorRow.id, VectorRow.vector)
            .where(VectorRow.id.in_(chunk))
            .order_by(VectorRow.id)
        ):
            out_ids.append(int(vector_id))
            blobs.append(blob)
    return _as_arrays(out_ids, blobs, dimension)


def iter_all_vectors(
    session: Session, collection_id: int, model_id: str, dimension: int, batch: int = 50_000
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream every vector of a collection for a model, in id order, in batches."""
    last = 0
    while True:
        rows = session.execute(
            select(VectorRow.id, VectorRow.vector)
            .where(
                VectorRow.collection_id == collection_id,
                VectorRow.model_id == model_id,
                VectorRow.id > last,
            )
            .order_by(VectorRow.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        ids, vectors = _as_arrays([r[0] for r in rows], [r[1] for r in rows], dimension)
        last = int(ids[-1])
        yield ids, vectors


def _as_arrays(ids: list[int], blobs: list[bytes], dimension: int) -> tuple[np.ndarray, np.ndarray]:
    id_array = np.asarray(ids, dtype=np.int64)
    if not blobs:
        return id_array, np.empty((0, dimension), dtype=np.float32)
    vectors = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dimension)
    return id_array, vectors.copy()


@dataclass(frozen=True)
class ListedDocument:
    """A document as a listing shows it, with the row id that orders the listing."""

    id: int
    external_id: str
    text: str
    meta: dict[str, Any]
    content_hash: str
    created_at: datetime
    updated_at: datetime


def documents_after(
    session: Session,
    collection_id: int,
    after_id: int,
    limit: int,
    where: ColumnElement[bool] | None = None,
) -> list[ListedDocument]:
    """Up to `limit` documents with a row id above `after_id`, in row id order (a stable
    order: an update keeps the row), only those matching `where` when given."""
    statement = (
        select(
            DocumentRow.id,
            DocumentRow.external_id,
            DocumentRow.text,
            DocumentRow.meta,
            DocumentRow.content_hash,
            DocumentRow.created_at,
            DocumentRow.updated_at,
        )
        .where(DocumentRow.collection_id == collection_id, DocumentRow.id > after_id)
        .order_by(DocumentRow.id)
        .limit(limit)
    )
    if where is not None:
        statement = statement.where(where)
    return [ListedDocument(*row) for row in session.execute(statement)]


def matching_external_ids(
    session: Session, collection_id: int, where: ColumnElement[bool], limit: int | None = None
) -> list[str]:
    """External ids of the collection's documents matching a compiled filter, in row order."""
    statement = (
        select(DocumentRow.external_id)
        .where(DocumentRow.collection_id == collection_id, where)
        .order_by(DocumentRow.id)
    )
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


def count_matching(session: Session, collection_id: int, where: ColumnElement[bool]) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(DocumentRow)
            .where(DocumentRow.collection_id == collection_id, where)
        )
        or 0
    )
