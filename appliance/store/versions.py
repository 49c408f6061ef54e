"""Repository functions over embedding versions: one model's vector set per collection.

A collection searches with one model (`collections.model_id`). Re-embedding with another model
writes that model's vectors beside the active ones, a batch at a time, without touching the
generation (searches and caches are unaffected); switching is one transaction that changes the
collection's model and bumps its generation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import ColumnElement, delete, exists, func, insert, select
from sqlalchemy.orm import Session

from appliance.store.documents import EmbeddedText, bump_generation
from appliance.store.schema import (
    CollectionRow,
    DocumentRow,
    EmbeddingVersionRow,
    VectorRow,
    utcnow,
)

BUILDING, READY, ACTIVE, INTERRUPTED, FAILED = (
    "building",
    "ready",
    "active",
    "interrupted",
    "failed",
)


@dataclass(frozen=True)
class PendingDocument:
    id: int
    text: str
    content_hash: str


def _without_vectors(collection_id: int, model_id: str) -> ColumnElement[bool]:
    has_vector = exists().where(
        VectorRow.document_id == DocumentRow.id, VectorRow.model_id == model_id
    )
    return (DocumentRow.collection_id == collection_id) & ~has_vector


def documents_without_vectors(
    session: Session, collection_id: int, model_id: str, *, after_id: int = 0, limit: int = 256
) -> list[PendingDocument]:
    """The collection's documents that have no vector of `model_id`, in id order."""
    rows = session.execute(
        select(DocumentRow.id, DocumentRow.text, DocumentRow.content_hash)
        .where(_without_vectors(collection_id, model_id), DocumentRow.id > after_id)
        .order_by(DocumentRow.id)
        .limit(limit)
    )
    return [PendingDocument(int(i), text, digest) for i, text, digest in rows]


def count_documents_without_vectors(session: Session, collection_id: int, model_id: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(DocumentRow)
            .where(_without_vectors(collection_id, model_id))
        )
        or 0
    )


def add_version_vectors(
    session: Session,
    collection_id: int,
    model_id: str,
    embedded: Sequence[tuple[PendingDocument, EmbeddedText]],
) -> int:
    """Store a model's vectors for documents that still have the embedded text and no vector
    of that model yet; a document changed since it was read is skipped (the next pass picks
    it up again). Returns how many documents got vectors."""
    ids = [doc.id for doc, _ in embedded]
    current = {
        int(doc_id): digest
        for doc_id, digest in session.execute(
            select(DocumentRow.id, DocumentRow.content_hash).where(DocumentRow.id.in_(ids))
        )
    }
    done = set(
        session.scalars(
            select(VectorRow.document_id).where(
                VectorRow.document_id.in_(ids), VectorRow.model_id == model_id
            )
        )
    )
    rows = [
        {
            "document_id": doc.id,
            "collection_id": collection_id,
            "model_id": model_id,
            "chunk_index": position,
            "char_start": start,
            "char_end": end,
            "vector": np.ascontiguousarray(chunks.vectors[position], dtype=np.float32).tobytes(),
        }
        for doc, chunks in embedded
        if current.get(doc.id) == doc.content_hash and doc.id not in done
        for position, (start, end) in enumerate(chunks.spans)
    ]
    if rows:
        session.execute(insert(VectorRow), rows)
    return len({row["document_id"] for row in rows})


def model_dimension(session: Session, model_id: str) -> int | None:
    """The dimension of the vectors `model_id` makes, as recorded where they were made (a
    version row); for a data dir from before that record, the stored vectors' size."""
    recorded = session.scalar(
        select(EmbeddingVersionRow.dimension)
        .where(EmbeddingVersionRow.model_id == model_id, EmbeddingVersionRow.dimension.is_not(None))
        .limit(1)
    )
    return int(recorded) if recorded is not None else vector_dimension(session, model_id)


def vector_dimension(session: Session, model_id: str) -> int | None:
    """The dimension of a model's stored vectors, if any are stored."""
    size = session.scalar(
        select(func.length(VectorRow.vector)).where(VectorRow.model_id == model_id).limit(1)
    )
    return None if size is None else int(size) // 4


def get_version(session: Session, collection_id: int, model_id: str) -> EmbeddingVersionRow | None:
    return session.scalars(
        select(EmbeddingVersionRow).where(
            EmbeddingVersionRow.collection_id == collection_id,
            EmbeddingVersionRow.model_id == model_id,
        )
    ).one_or_none()


def list_versions(session: Session, collection_id: int) -> list[EmbeddingVersionRow]:
    return list(
        session.scalars(
            select(EmbeddingVersionRow)
            .where(EmbeddingVersionRow.collection_id == collection_id)
            .order_by(EmbeddingVersionRow.created_at, EmbeddingVersionRow.id)
        )
    )


def stored_vector_counts(session: Session, collection_id: int) -> dict[str, int]:
    """Vectors stored per model for a collection (every version, recorded or not)."""
    rows = session.execute(
        select(VectorRow.model_id, func.count())
        .where(VectorRow.collection_id == collection_id)
        .group_by(VectorRow.model_id)
    )
    return {model_id: int(count) for model_id, count in rows}


def record_version(
    session: Session,
    collection_id: int,
    model_id: str,
    state: str,
    *,
    total: int | None = None,
    embedded: int | None = None,
    detail: str | None = None,
    dimension: int | None = None,
) -> EmbeddingVersionRow:
    """Create or update a version's row. The active model is the collection's `model_id`
    alone: a version row is never `active` (`activate` switches the collection)."""
    if state == ACTIVE:
        raise ValueError("the active model is the collection's model_id; record READY")
    row = get_version(session, collection_id, model_id)
    if row is None:
        row = EmbeddingVersionRow(collection_id=collection_id, model_id=model_id)
        session.add(row)
    row.state = state
    if dimension is not None:
        row.dimension = dimension
    if total is not None:
        row.documents_total = total
    if embedded is not None:
        row.documents_embedded = embedded
    if detail is not None:
        row.detail = detail
    row.updated_at = utcnow()
    session.flush()
    return row


def activate(session: Session, collection_id: int, model_id: str) -> int:
    """Make `model_id` the collection's search model; the previous one stays as `ready`.
    Returns the new generation (caches keyed by the old one are never served again)."""
    collection = session.get_one(CollectionRow, collection_id)
    previous = collection.model_id
    if previous != model_id:
        record_version(session, collection_id, previous, READY)
    collection.model_id = model_id
    row = record_version(session, collection_id, model_id, READY)
    row.activated_at = utcnow()
    return bump_generation(session, collection_id)


def drop_version(session: Session, collection_id: int, model_id: str) -> int:
    """Delete a version's vectors and record; returns the number of vectors deleted."""
    deleted = session.scalar(
        select(func.count())
        .select_from(VectorRow)
        .where(VectorRow.collection_id == collection_id, VectorRow.model_id == model_id)
    )
    session.execute(
        delete(VectorRow).where(
            VectorRow.collection_id == collection_id, VectorRow.model_id == model_id
        )
    )
    session.execute(
        delete(EmbeddingVersionRow).where(
            EmbeddingVersionRow.collection_id == collection_id,
            EmbeddingVersionRow.model_id == model_id,
        )
    )
    return int(deleted or 0)


def mark_interrupted(session: Session) -> int:
    """At start-up: versions left `building` by a stopped process. Their stored vectors stay;
    running the reindex again resumes from them."""
    rows = session.scalars(
        select(EmbeddingVersionRow).where(EmbeddingVersionRow.state == BUILDING)
    ).all()
    for row in rows:
        row.state = INTERRUPTED
        row.detail = "the process stopped while embedding; run the reindex again to resume"
    return len(rows)
