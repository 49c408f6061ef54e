"""Repository functions over recorded relevance feedback."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from appliance.store.schema import FeedbackRow


def record_feedback(
    session: Session,
    *,
    collection_id: int,
    query_id: str,
    query: str,
    served: Sequence[str],
    doc_id: str,
    relevance: int,
) -> None:
    session.add(
        FeedbackRow(
            collection_id=collection_id,
            query_id=query_id,
            query=query,
            served=list(served),
            doc_id=doc_id,
            relevance=relevance,
        )
    )


def judgments(
    session: Session, collection_id: int
) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """(qrels, served rankings) by query id; a later judgment of the same pair wins."""
    qrels: dict[str, dict[str, int]] = {}
    served: dict[str, list[str]] = {}
    rows = session.scalars(
        select(FeedbackRow)
        .where(FeedbackRow.collection_id == collection_id)
        .order_by(FeedbackRow.id)
    )
    for row in rows:
        qrels.setdefault(row.query_id, {})[row.doc_id] = row.relevance
        served[row.query_id] = list(row.served)
    return qrels, served
