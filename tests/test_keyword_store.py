"""Keyword search at the store level: the top-k-inside-FTS5 form returns what the joined form
returns, across collections sharing the FTS table and under metadata filters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from appliance.search.filters import compile_filter
from appliance.store import collections as collection_store
from appliance.store import keyword as keyword_store
from appliance.store.database import Database
from appliance.store.documents import content_hash
from appliance.store.keyword import keyword_search, match_expression
from appliance.store.schema import DocumentRow

WORDS = [
    "cell",
    "protein",
    "gene",
    "tumour",
    "mouse",
    "patient",
    "risk",
    "dose",
    "study",
    "trial",
    "blood",
    "brain",
    "heart",
    "liver",
    "virus",
    "vaccine",
    "insulin",
    "glucose",
    "kinase",
    "receptor",
    "membrane",
    "neuron",
    "diet",
    "fibre",
    "sleep",
]
QUERIES = [
    "protein kinase receptor",
    "tumour risk in patients",
    "blood glucose insulin diet",
    "virus vaccine trial",
    "heart",
    "neuron membrane sleep fibre",
    "nothing matches zebra",
]


def joined_search(
    session: Session,
    collection_id: int,
    query: str,
    limit: int,
    where: object = None,
    title_weight: float = 1.0,
) -> list[tuple[int, float]]:
    """The reference: every match joined to its document, filtered, then sorted."""
    expression = match_expression(query)
    assert expression is not None
    return keyword_store.joined_search(
        session,
        collection_id,
        expression,
        limit,
        where,
        (title_weight, 1.0),  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """Two collections in one FTS table; collection 2 is the bigger one, so collection 1's
    documents are often outranked by another collection's."""
    db = Database(Path(tmp_path_factory.mktemp("keyword")) / "store.sqlite3")
    rng = np.random.default_rng(7)
    with db.write() as session:
        ids = [
            collection_store.create_collection(
                session, name=name, backend="hnswlib", spec="M=16", options={}, model_id="m"
            ).id
            for name in ("small", "big")
        ]
        rows = []
        for number in range(1_200):
            collection_id = ids[0] if number % 4 == 0 else ids[1]
            # Zipf-ish: early words are common, later ones rare.
            picks = rng.zipf(1.3, size=int(rng.integers(5, 40))) % len(WORDS)
            text = " ".join(WORDS[i] for i in picks)
            rows.append(
                {
                    "collection_id": collection_id,
                    "external_id": f"d{number}",
                    "text": text,
                    "meta": {"title": WORDS[int(picks[0])], "year": 2000 + number % 20},
                    "content_hash": content_hash(text),
                }
            )
        session.execute(insert(DocumentRow), rows)
    return db


def _scores(hits: list[tuple[int, float]]) -> list[float]:
    return [round(score, 9) for _, score in hits]


@pytest.mark.parametrize("limit", [1, 5, 50, 500])
@pytest.mark.parametrize("collection_id", [1, 2])
def test_keyword_search_equals_the_joined_form(
    store: Database, collection_id: int, limit: int
) -> None:
    with store.read() as session:
        for query in QUERIES:
            expected = joined_search(session, collection_id, query, limit, title_weight=3.0)
            found = keyword_search(session, collection_id, query, limit, title_weight=3.0)
            assert _scores(found) == _scores(expected), query
            # Ties may come in either order, but the same documents come back.
            assert {i for i, _ in found} == {i for i, _ in expected} or _ties_at_the_cut(expected)
            in_collection = _collection_of(session, [i for i, _ in found])
            assert in_collection <= {collection_id}


@pytest.mark.parametrize(
    "spec", [{"year": 2003}, {"year": {"$gte": 2010}}, {"title": {"$in": ["heart", "sleep"]}}]
)
def test_keyword_search_with_a_filter_equals_the_joined_form(
    store: Database, spec: dict[str, object]
) -> None:
    where = compile_filter(spec)
    with store.read() as session:
        for query in QUERIES:
            expected = joined_search(session, 2, query, 20, where)
            found = keyword_search(session, 2, query, 20, where=where)
            assert _scores(found) == _scores(expected), (query, spec)


def test_keyword_search_of_nothing_is_empty(store: Database) -> None:
    with store.read() as session:
        assert keyword_search(session, 1, "!!! ---", 10) == []
        assert keyword_search(session, 1, "protein", 0) == []


def _ties_at_the_cut(hits: list[tuple[int, float]]) -> bool:
    return len(hits) >= 2 and round(hits[-1][1], 9) == round(hits[-2][1], 9)


def _collection_of(session: Session, ids: list[int]) -> set[int]:
    return set(session.scalars(select(DocumentRow.collection_id).where(DocumentRow.id.in_(ids))))
