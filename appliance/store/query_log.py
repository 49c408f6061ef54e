"""Repository functions over the query log: counts of recent searches, for cache warming."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session

from appliance.store.schema import CollectionRow, QueryLogRow


@dataclass(frozen=True)
class LoggedQuery:
    collection: str
    query: str
    params: str
    count: int


def add_counts(session: Session, counts: Iterable[tuple[int, str, str, int, datetime]]) -> None:
    """Add (collection id, query, params, count, last seen) to the log, one row per search."""
    rows = [
        {"collection_id": c, "query": q, "params": p, "count": n, "last_seen": seen}
        for c, q, p, n, seen in counts
    ]
    if not rows:
        return
    statement = insert(QueryLogRow)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["collection_id", "query", "params"],
            set_={
                "count": QueryLogRow.count + statement.excluded.count,
                "last_seen": statement.excluded.last_seen,
            },
        ),
        rows,
    )


def frequent_queries(session: Session, *, since: datetime, limit: int) -> list[LoggedQuery]:
    """The most asked searches seen since `since`, most frequent first."""
    rows = session.execute(
        select(CollectionRow.name, QueryLogRow.query, QueryLogRow.params, QueryLogRow.count)
        .join(CollectionRow, CollectionRow.id == QueryLogRow.collection_id)
        .where(QueryLogRow.last_seen >= since)
        .order_by(QueryLogRow.count.desc(), QueryLogRow.last_seen.desc())
        .limit(limit)
    )
    return [LoggedQuery(name, query, params, int(count)) for name, query, params, count in rows]


def forget_before(session: Session, cutoff: datetime) -> None:
    session.execute(delete(QueryLogRow).where(QueryLogRow.last_seen < cutoff))
