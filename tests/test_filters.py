"""Filters: every result satisfies the filter, and on Flat the results are exactly the
top-k of the matching documents, at any selectivity."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from appliance.errors import InvalidFilter
from appliance.index.base import IndexConfig, SearchParams
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
                    # A list mostly, a plain string for every fifth document.
                    "tags": topic if number % 5 == 0 else [topic, TOPICS[(number // 8) % 8]],
                    "scores": [number % 7, number % 11],
                },
            )
        )
    return docs


def _same(value: Any, other: Any) -> bool:
    numbers = (int, float)
    if isinstance(value, bool) or isinstance(other, bool):
        return type(value) is type(other)
    return type(value) is type(other) or (isinstance(value, numbers) and isinstance(other, numbers))


def _compare(meta: dict[str, Any], key: str, op: str, operand: Any) -> bool:
    """One condition, as MongoDB reads it: on a list, any element may satisfy it."""
    present, value = True, meta
    for part in key.split("."):  # `a.b` reaches into nested objects
        present = present and isinstance(value, dict) and part in value
        value = value.get(part) if present else None
    is_list = isinstance(value, list)
    # The field itself and, for a list, each of its elements.
    candidates = ([value, *value] if is_list else [value]) if present else []

    def equal(other: Any) -> bool:
        return any(_same(c, other) and c == other for c in candidates)

    if op == "$exists":
        return present is operand
    if op == "$eq":
        return equal(operand)
    if op == "$ne":
        return not equal(operand)
    if op == "$in":
        return any(equal(o) for o in operand)
    if op == "$nin":
        return not any(equal(o) for o in operand)
    if op == "$contains":
        return is_list and any(_same(e, operand) and e == operand for e in value)
    if op == "$all":
        return is_list and all(any(_same(e, o) and e == o for e in value) for o in operand)
    return any(
        _same(c, operand)
        and not isinstance(c, bool)
        and {"$gt": c > operand, "$gte": c >= operand, "$lt": c < operand, "$lte": c <= operand}[op]
        for c in candidates
        if not isinstance(c, list | dict)
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
    # Lists: a plain value matches a list holding it (or the value itself).
    {"tags": "sailing"},  # lists holding it, and the plain strings
    {"tags": {"$contains": "sailing"}},  # lists only
    {"tags": {"$all": ["chess", "music"]}},
    {"tags": {"$in": ["poetry", "nothing"]}, "even": False},
    {"tags": {"$nin": ["chess", "music", "poetry"]}},
    {"tags": {"$ne": "cooking"}, "lang": "de"},
    {"scores": {"$gte": 6, "$lt": 7}},  # any element in [6, 7)
    {"scores": 10},
    {"rare": {"$exists": True}},
    {"rare": {"$exists": False}, "n": {"$lt": 8}},
    {"$or": [{"tags": {"$all": ["gardening", "astronomy"]}}, {"rare": {"$exists": True}}]},
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


@pytest.mark.parametrize("spec", FILTERS[:5] + FILTERS[9:])
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
        ({"tags": {"$exists": 1}}, "takes true or false"),
        ({"tags": {"$all": []}}, "at least one value"),
        ({"tags": {"$all": "soup"}}, "takes a list"),
        ({"tags": {"$contains": ["soup"]}}, "string, number, boolean or null"),
        ({"tags": {"$contains": {"a": 1}}}, "string, number, boolean or null"),
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


# -- lists, $contains, $all, $exists: exact ids over a small hand-made collection ------------
PANTRY = [
    ("lentil", {"tags": ["soup", "vegan"], "ratings": [4, 5]}),
    ("minestrone", {"tags": ["soup", "italian", "vegan"], "ratings": [3]}),
    ("broth", {"tags": "soup", "ratings": 2}),
    ("pizza", {"tags": ["italian"], "ratings": [5, 5, 1]}),
    ("bread", {"tags": [], "note": None}),
    ("salad", {"tags": {"soup": "no"}, "extra": {"tags": ["soup"]}}),
    ("stew", {"tags": ["Soup", 1, True, None]}),
    ("water", {}),
]
LIST_CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"tags": "soup"}, {"lentil", "minestrone", "broth"}),
    ({"tags": {"$eq": "soup"}}, {"lentil", "minestrone", "broth"}),
    ({"tags": {"$ne": "soup"}}, {"pizza", "bread", "salad", "stew", "water"}),
    ({"tags": {"$in": ["vegan", "italian"]}}, {"lentil", "minestrone", "pizza"}),
    ({"tags": {"$nin": ["soup", "italian"]}}, {"bread", "salad", "stew", "water"}),
    ({"tags": {"$contains": "soup"}}, {"lentil", "minestrone"}),
    ({"tags": {"$contains": "Soup"}}, {"stew"}),
    ({"tags": {"$contains": 1}}, {"stew"}),
    ({"tags": {"$contains": True}}, {"stew"}),
    ({"tags": {"$contains": None}}, {"stew"}),
    ({"tags": True}, {"stew"}),
    ({"tags": {"$all": ["soup", "vegan"]}}, {"lentil", "minestrone"}),
    ({"tags": {"$all": ["soup", "italian", "vegan"]}}, {"minestrone"}),
    ({"tags": {"$all": ["soup"]}}, {"lentil", "minestrone"}),
    ({"tags": {"$all": ["soup", "meat"]}}, set()),
    ({"tags": {"$exists": True}}, {n for n, _ in PANTRY} - {"water"}),
    ({"tags": {"$exists": False}}, {"water"}),
    ({"note": {"$exists": True}}, {"bread"}),
    ({"note": None}, {"bread"}),
    ({"extra.tags": "soup"}, {"salad"}),
    ({"extra.tags": {"$contains": "soup"}}, {"salad"}),
    ({"ratings": 5}, {"lentil", "pizza"}),
    ({"ratings": {"$lte": 2}}, {"broth", "pizza"}),
    # As in MongoDB, each condition may be met by a different element: pizza's 5 and 1.
    ({"ratings": {"$gt": 3, "$lt": 5}}, {"lentil", "pizza"}),
    ({"ratings": {"$in": [3, 2]}}, {"minestrone", "broth"}),
    ({"$and": [{"tags": "soup"}, {"tags": {"$ne": "vegan"}}]}, {"broth"}),
    (
        {"$or": [{"tags": {"$contains": "italian"}}, {"ratings": 2}]},
        {"minestrone", "pizza", "broth"},
    ),
]


@pytest.fixture
def pantry(appliance: Appliance) -> Appliance:
    appliance.create_collection("pantry", IndexConfig(backend="faiss", spec="Flat"))
    appliance.ingest.upsert(
        "pantry", [DocumentInput(id=i, text=f"A recipe: {i}", metadata=m) for i, m in PANTRY]
    )
    return appliance


@pytest.mark.parametrize(("spec", "expected"), LIST_CASES, ids=lambda v: str(v)[:60])
def test_list_filters_match_exactly_these_documents(
    pantry: Appliance, spec: dict[str, Any], expected: set[str]
) -> None:
    assert {name for name, meta in PANTRY if _matches(meta, spec)} == expected  # the reference
    for mode in ("dense", "keyword"):
        outcome = pantry.search.search(
            "pantry", "recipe", options=SearchOptions(limit=100, filter=spec, mode=mode)
        )
        assert {hit.id for hit in outcome.results} == expected, mode


@pytest.mark.parametrize("spec", FILTERS[9:], ids=lambda v: str(v)[:60])
def test_exact_and_index_paths_agree_on_list_filters(
    open_appliance: Any, corpus: list[DocumentInput], spec: dict[str, Any]
) -> None:
    """The same filtered search over an HNSW index, once through the exact path (the matching
    vectors loaded and scored) and once through the index with an id selector."""
    answers = []
    for threshold in (10**9, 0):
        appliance = open_appliance(exact_filter_threshold=threshold)
        if "hnsw" not in appliance.collections.names():
            appliance.create_collection("hnsw", IndexConfig(backend="faiss", spec="HNSW32,Flat"))
            appliance.ingest.upsert("hnsw", corpus)
        outcome = appliance.search.search(
            "hnsw",
            "a chess opening for beginners",
            options=SearchOptions(limit=10, filter=spec, mode="dense", params=SearchParams(ef=600)),
        )
        assert all(_matches(hit.metadata, spec) for hit in outcome.results)
        answers.append([hit.id for hit in outcome.results])
        appliance.db.close()
    assert answers[0] == answers[1]
