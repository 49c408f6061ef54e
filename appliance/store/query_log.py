"""Repository functions over the query log: counts of recent searches, for cache warming."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from appliance.store.dialect import insert_for
from appliance.store.schema import CollectionRow, QueryLogRow


@dataclass(frozen=True)
class LoggedQuery:
    collection: str
    query: str
    params: str
    count: int


def add_counts(session: Session, counts: Iterable[tuple[int, str, str, int, datetime]]) -> int:
    """Add (collection id, query, params, count, last seen) to the log, one row per search.
    Counts of collections dropped since they were gathered are left out (their rows would
    break the foreign key and fail every collection's counts); returns how many searches
    those were. Run in a write transaction (writers take turns), no drop can come in between."""
    counts = list(counts)
    wanted = sorted({c for c, _, _, _, _ in counts})
    existing = set(session.scalars(select(CollectionRow.id).where(CollectionRow.id.in_(wanted))))
    rows = [
        {"collection_id": c, "query": q, "params": p, "count": n, "last_seen": seen}
        for c, q, p, n, seen in counts
        if c in existing
    ]
    dropped = sum(n for c, _, _, n, _ in counts if c not in existing)
    if not rows:
        return dropped
    statement = insert_for(session, QueryLogRow)
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
    return dropped


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
