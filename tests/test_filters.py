"""Filters: every result satisfies the filter, and on Flat the results are exactly the
top-k of the matching documents, at any selectivity."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from appliance.errors import InvalidFilter
from appliance.index.base import IndexConfig
from appliance.ingest.pipeline import DocumentInput
from appliance.search.filters import compile_filter
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance

TOPICS = ["astronomy", "cooking", "finance", "gardening", "music", "sailing", "chess", "poetry"]


def _docs(count: int) -> list[DocumentInput]:
    rng = np.random.default_rng(3)
    docs = []
    for number in range(count):
        topic = TOPICS[number % len(TOPICS)]
        docs.append(
            DocumentInput(
                id=f"d{number}",
                text=f"Note {number} about {topic}: {' '.join(rng.choice(TOPICS, 3))}",
                metadata={
                    "topic": topic,
                    "n": number,
                    "even": number % 2 == 0,
                    "lang": "en" if number % 10 else "de",
                    **({"rare": "yes"} if number % 97 == 5 else {}),
                },
            )
        )
    return docs


def _compare(meta: dict[str, Any], key: str, op: str, operand: Any) -> bool:
    present = key in meta
    value = meta.get(key)

    def equal(other: Any) -> bool:
        return present and type(value) is type(other) and value == other

    if op == "$eq":
        return equal(operand)
    if op == "$ne":
        return not equal(operand)
    if op == "$in":
        return any(equal(o) for o in operand)
    if op == "$nin":
        return not any(equal(o) for o in operand)
    if not (present and type(value) is type(operand)):
        return False
    return bool(
        {
            "$gt": value > operand,
            "$gte": value >= operand,
            "$lt": value < operand,
            "$lte": value <= operand,
        }[op]
    )


def _matches(meta: dict[str, Any], spec: dict[str, Any]) -> bool:
    """A plain-Python reading of the filter language, to check the SQL against."""
    for key, cond in spec.items():
        if key == "$and":
            if not all(_matches(meta, c) for c in cond):
                return False
        elif key == "$or":
            if not any(_matches(meta, c) for c in cond):
                return False
        else:
            ops = cond if isinstance(cond, dict) else {"$eq": cond}
            if not all(_compare(meta, key, op, operand) for op, operand in ops.items()):
                return False
    return True


@pytest.fixture(scope="module")
def corpus() -> list[DocumentInput]:
    return _docs(600)


@pytest.fixture
def flat(appliance: Appliance, corpus: list[DocumentInput]) -> Appliance:
    appliance.create_collection("flat", IndexConfig(backend="faiss", spec="Flat"))
    appliance.ingest.upsert("flat", corpus)
    return appliance


FILTERS: list[dict[str, Any]] = [
    {"rare": "yes"},  # ~1 %
    {"lang": "de"},  # 10 %
    {"topic": {"$in": ["chess", "poetry"]}},  # 25 %
    {"even": True},  # 50 %
    {"n": {"$gte": 10, "$lt": 13}},  # 3 documents
    {"$or": [{"topic": "music"}, {"n": {"$lte": 3}}]},
    {"$and": [{"lang": {"$ne": "de"}}, {"topic": {"$nin": ["cooking", "finance"]}}]},
    {"n": 599},
    {"topic": "no-such-topic"},
]


@pytest.mark.parametrize("spec", FILTERS)
def test_flat_filtered_results_are_the_exact_top_k_of_matches(
    flat: Appliance, corpus: list[DocumentInput], spec: dict[str, Any]
) -> None:
    query = "a chess opening for beginners"
    outcome = flat.search.search(
        "flat", query, options=SearchOptions(limit=10, filter=spec, mode="dense")
    )
    matching = [doc for doc in corpus if _matches(doc.metadata, spec)]
    vectors = flat.encoder.encode([doc.text for doc in matching])
    scores = vectors @ flat.encoder.encode([query])[0]
    expected = [matching[i].id for i in np.argsort(-scores, kind="stable")[:10]]
    assert [hit.id for hit in outcome.results] == expected
    assert all(_matches(hit.metadata, spec) for hit in outcome.results)


@pytest.mark.parametrize("spec", FILTERS[:5])
def test_hnsw_filtered_results_all_match_and_are_not_short(
    appliance: Appliance, corpus: list[DocumentInput], spec: dict[str, Any]
) -> None:
    appliance.create_collection("hnsw")
    appliance.ingest.upsert("hnsw", corpus)
    outcome = appliance.search.search("hnsw", "gardening tips", limit=10, filter=spec)
    expected_count = min(10, sum(_matches(doc.metadata, spec) for doc in corpus))
    assert len(outcome.results) == expected_count
    assert all(_matches(hit.metadata, spec) for hit in outcome.results)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"$where": "1=1"}, "unknown operator"),
        ({"lang": {"$regex": "e.*"}}, "unknown operator '\\$regex'"),
        ({"lang') OR 1=1 --": "x"}, "not a valid metadata key"),
        ({"n": {"$in": 5}}, "takes a list"),
        ({"n": {"$gt": [1, 2]}}, "string, number, boolean or null"),
        ({"n": {"$gt": True}}, "number or a string"),
        ({"$or": []}, "non-empty list"),
        ({"$or": [{}]}, "non-empty object"),
        ({"lang": {}}, "empty object"),
        ({"n": {"$gt": float("nan")}}, "non-finite"),
    ],
)
def test_malformed_filters_say_what_is_wrong(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFilter, match=message):
        compile_filter(spec)


@pytest.mark.parametrize(
    ("spec", "suggestion"),
    [
        ({"year": {"$gte ": 2020}}, "did you mean '$gte'?"),
        ({"year": {"gte": 2020}}, "did you mean '$gte'?"),
        ({"year": {"$greater": 2020}}, "did you mean '$gte'?"),
        ({"kind": {"$nn": ["a"]}}, "did you mean '$nin'?"),
        ({"$OR": [{"a": 1}]}, "did you mean '$or'?"),
        ({"kind ": "bird"}, "did you mean 'kind'?"),
    ],
)
def test_near_misses_in_a_filter_suggest_the_right_name(
    spec: dict[str, Any], suggestion: str
) -> None:
    with pytest.raises(InvalidFilter) as refused:
        compile_filter(spec)
    assert suggestion in refused.value.detail


def test_filter_depth_and_size_are_capped() -> None:
    deep: dict[str, Any] = {"a": 1}
    for _ in range(12):
        deep = {"$and": [deep]}
    with pytest.raises(InvalidFilter, match="deeper"):
        compile_filter(deep)
    with pytest.raises(InvalidFilter, match="conditions"):
        compile_filter({"$or": [{"n": i} for i in range(300)]})


def test_empty_filter_means_no_filter() -> None:
    assert compile_filter(None) is None
    assert compile_filter({}) is None
