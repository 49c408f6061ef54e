"""Keyword search with SQLite FTS5 (BM25) over document titles and texts: SQLite stores only.

Searches use the derived keyword index (appliance/keyword/), on either dialect; this table is
what it replaced, kept on SQLite stores (its triggers still fill it) as its reference, and
never created on PostgreSQL, which has no FTS5.

The FTS table is kept by triggers on `documents` (created by the schema revisions,
store/migrations/), so it is written in the same transaction as the document and can never
drift from the store. Text is tokenised with `porter unicode61` (stemmed, case- and
accent-folded).

Cost: FTS5 scores every document that matches any term (one bm25() call each, ~0.9 µs), and
OR-ed queries with a common term match a third of a collection: ~30 ms at 100k documents
(benchmarks/keyword_latency.py). Leaving common terms out of the matching (scoring the
documents that have a rarer term exactly, with `(R) AND (R OR C)` less `R`) was tried and
gained only ~1.5x more, with the top-k provably exact for under half of the queries; below
~10 ms needs an index that stops early (impact-ordered postings, MaxScore/WAND), i.e. a
derived keyword index beside FTS5, not a different FTS5 query.
"""

from __future__ import annotations

import re

import numpy as np
from sqlalchemy import ColumnElement, column, func, literal_column, select, table, text
from sqlalchemy.orm import Session

from appliance.store.dialect import session_dialect
from appliance.store.schema import DocumentRow

FTS_TABLE = "documents_fts"
MAX_QUERY_TERMS = 64
_TERM = re.compile(r"\w+", re.UNICODE)
# Lucene's English stop set: OR-ing them in lets any document with "the" or "in" match, which
# a min-max-normalised fusion then over-rewards on small collections.
_LUCENE_ENGLISH_STOP_WORDS = (
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with"
)
STOP_WORDS = frozenset(_LUCENE_ENGLISH_STOP_WORDS.split())


def query_terms(query: str) -> list[str]:
    """The query's distinct terms but stop words, each quoted so FTS5 syntax is inert."""
    terms = list(dict.fromkeys(term.lower() for term in _TERM.findall(query)))
    # A query of nothing but stop words still searches for them.
    terms = [term for term in terms if term not in STOP_WORDS] or terms
    return [f'"{term}"' for term in terms[:MAX_QUERY_TERMS]]


def match_expression(query: str) -> str | None:
    """Any of the query's terms but stop words (an FTS5 MATCH expression)."""
    return " OR ".join(query_terms(query)) or None


def keyword_search(
    session: Session,
    collection_id: int,
    query: str,
    limit: int,
    *,
    where: ColumnElement[bool] | None = None,
    title_weight: float = 1.0,
    body_weight: float = 1.0,
) -> list[tuple[int, float]]:
    """(document id, BM25 score) best first; higher is better."""
    expression = match_expression(query)
    if expression is None or limit <= 0:
        return []
    return _full_search(
        session, collection_id, expression, limit, where, (title_weight, body_weight)
    )


def _full_search(
    session: Session,
    collection_id: int,
    expression: str,
    limit: int,
    where: ColumnElement[bool] | None,
    weights: tuple[float, float],
) -> list[tuple[int, float]]:
    """BM25 over every document that matches any term: exact, one bm25() call per match.

    The best `limit` are taken inside FTS5 before anything is joined (joining first looked up
    every match's document row: ~2.5x the time); only when other collections' documents or
    the filter leave fewer than `limit` of them does the joined form run.
    """
    rows = (
        session.connection()
        .exec_driver_sql(
            f"SELECT rowid, bm25({FTS_TABLE}, ?, ?) AS rank FROM {FTS_TABLE} "
            f"WHERE {FTS_TABLE} MATCH ? ORDER BY rank LIMIT ?",
            (*weights, expression, limit),
        )
        .all()
    )
    if rows:
        # The FTS table is shared by all collections: keep this collection's, filtered.
        kept_statement = select(DocumentRow.id).where(
            DocumentRow.id.in_([rowid for rowid, _ in rows]),
            DocumentRow.collection_id == collection_id,
        )
        if where is not None:
            kept_statement = kept_statement.where(where)
        kept = set(session.scalars(kept_statement))
        hits = [(int(rowid), -float(rank)) for rowid, rank in rows if rowid in kept]
    else:
        hits = []
    if len(hits) == len(rows) or len(rows) < limit:
        return hits  # all of the best `limit` qualify, or these were all the matches
    return joined_search(session, collection_id, expression, limit, where, weights)


def joined_search(
    session: Session,
    collection_id: int,
    expression: str,
    limit: int,
    where: ColumnElement[bool] | None,
    weights: tuple[float, float],
) -> list[tuple[int, float]]:
    """The plain form: every match joined to its document, filtered, then sorted. Exact for
    any filter; the fallback of `_full_search` and the reference it is measured against."""
    fts = table(FTS_TABLE, column("rowid"), column(FTS_TABLE))
    rank = func.bm25(literal_column(FTS_TABLE), *weights).label("rank")
    statement = (
        select(DocumentRow.id, rank)
        .join_from(fts, DocumentRow, fts.c.rowid == DocumentRow.id)
        .where(fts.c[FTS_TABLE].op("MATCH")(expression))
        .where(DocumentRow.collection_id == collection_id)
        .order_by(rank)
        .limit(limit)
    )
    if where is not None:
        statement = statement.where(where)
    return [(int(doc_id), -float(score)) for doc_id, score in session.execute(statement)]


def fts_document_ids(session: Session) -> np.ndarray | None:
    """The document ids the FTS5 table holds; None where there is no such table (a
    PostgreSQL store, or a SQLite file without it)."""
    if session_dialect(session) != "sqlite":
        return None
    exists = session.execute(
        text("SELECT 1 FROM sqlite_master WHERE name = :name"), {"name": FTS_TABLE}
    ).first()
    if not exists:
        return None
    return np.fromiter(
        session.execute(text(f"SELECT rowid FROM {FTS_TABLE}")).scalars(), dtype=np.int64
    )
