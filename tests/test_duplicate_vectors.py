"""Corpora full of duplicates: identical vectors are indexed once, so an HNSW graph is not
trapped among thousands of points at distance 0 (issue: 20 real documents and 2,000 copies of
"t", a search for one of the 20 found only copies at the default ef)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from appliance.index.base import IndexConfig, SearchParams
from appliance.index.duplicates import DeduplicatedIndex
from appliance.index.registry import DEFAULT_INDEX, backend_for
from appliance.ingest.pipeline import DocumentInput
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance

DIM = 32
# Twenty distinct texts (benchmarks/duplicates_recall.py uses them too).
TOPICS = [
    "volcanic eruptions reshape island coastlines",
    "honeybees communicate with a waggle dance",
    "sourdough bread rises thanks to wild yeast",
    "glaciers carve U-shaped valleys over millennia",
    "octopuses change colour to hide from predators",
    "the printing press spread literacy across Europe",
    "solar panels convert sunlight into electricity",
    "chess openings balance development and king safety",
    "coral reefs bleach when oceans grow too warm",
    "migrating geese fly in a V formation",
    "espresso is brewed by forcing hot water through coffee",
    "tectonic plates drift a few centimetres a year",
    "penicillin was discovered in a mouldy petri dish",
    "the violin has four strings tuned in fifths",
    "desert cacti store water in thick stems",
    "lighthouses guided ships along rocky shores",
    "compound interest grows savings exponentially",
    "the moon's gravity causes ocean tides",
    "origami folds paper into cranes and boxes",
    "marathon runners train their aerobic capacity",
]

CONFIGS = [DEFAULT_INDEX, IndexConfig(backend="faiss", spec="HNSW32,Flat")]


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows / np.linalg.norm(rows, axis=1, keepdims=True), np.float32)


def _corpus(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids 1..20 real vectors, 21..2020 one repeated vector."""
    rng = np.random.default_rng(seed)
    real = _unit(rng.normal(size=(20, DIM)))
    copy = _unit(rng.normal(size=(1, DIM)))
    vectors = np.concatenate([real, np.repeat(copy, 2000, axis=0)])
    return np.arange(1, 2021, dtype=np.int64), vectors, real


def _recall(
    index: DeduplicatedIndex,
    vectors: np.ndarray,
    ids: np.ndarray,
    queries: np.ndarray,
    k: int = 10,
    allowed: np.ndarray | None = None,
) -> float:
    """Recall@k against exact search, robust to ties among copies: the i-th best score found
    must reach the i-th best exact score (ids of identical vectors are interchangeable)."""
    keep = np.ones(len(ids), bool) if allowed is None else np.isin(ids, allowed)
    exact = np.sort(queries @ vectors[keep].T, axis=1)[:, ::-1][:, :k]
    scores, found = index.search(queries, k, SearchParams(ef=16), allowed)
    assert (found >= 0).all()
    if allowed is not None:
        assert np.isin(found, allowed).all()
    return float((np.sort(scores, axis=1)[:, ::-1] >= exact - 1e-5).mean())


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.label)
def test_identical_vectors_enter_the_index_once_and_every_id_is_found(config: IndexConfig) -> None:
    ids, vectors, real = _corpus()
    index = backend_for(config).create(config, DIM)
    assert isinstance(index, DeduplicatedIndex)
    index.add(ids[:500], vectors[:500])
    index.add(ids[500:], vectors[500:])
    assert len(index) == 2020 and len(index.inner) == 21 and index.duplicates() == 1999
    assert sorted(index.ids().tolist()) == ids.tolist()
    queries = _unit(real + 0.05 * np.random.default_rng(1).normal(size=real.shape))
    assert _recall(index, vectors, ids, queries) >= 0.95
    # A query at the copies gets k of them, with the copies' exact score.
    scores, found = index.search(vectors[-1:], 10, SearchParams(ef=16))
    assert set(found[0].tolist()) <= set(range(21, 2021)) and len(set(found[0].tolist())) == 10
    assert np.allclose(scores, 1.0, atol=1e-5)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.label)
def test_removing_the_representative_hands_its_place_to_an_alias(config: IndexConfig) -> None:
    ids, vectors, _ = _corpus()
    index = backend_for(config).create(config, DIM)
    index.add(ids, vectors)
    index.remove(np.array([21, 22, 2020]))  # the representative, its heir, an alias
    assert len(index) == 2017 and len(index.inner) == 21
    left = set(index.ids().tolist())
    assert {21, 22, 2020}.isdisjoint(left) and {23, 24, 2019} <= left
    _, found = index.search(vectors[-1:], 5, SearchParams(ef=16))
    assert found[0].tolist() == [23, 24, 25, 26, 27]
    index.remove(np.arange(23, 2020))
    assert len(index) == 20 and index.duplicates() == 0 and len(index.inner) == 20
    # The vector can come back under a new id (ids are never reused).
    index.add(np.array([3000]), vectors[-1:])
    assert len(index.inner) == 21
    index.add(np.array([3001]), vectors[-1:])
    assert index.duplicates() == 1


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.label)
def test_a_group_expands_in_its_rank_and_the_answer_is_padded_past_the_index(
    config: IndexConfig,
) -> None:
    """A hit that stands for a group becomes its members, at its score and in its place; the
    hits around it keep theirs; each row is cut at k, and padded with -1 when short."""
    rng = np.random.default_rng(4)
    real = _unit(rng.normal(size=(3, DIM)))
    copy = _unit(rng.normal(size=(1, DIM)))
    index = backend_for(config).create(config, DIM)
    index.add(np.array([1, 2, 3, 10, 11, 12]), np.concatenate([real, np.repeat(copy, 3, 0)]))
    queries = _unit(np.concatenate([copy + 0.3 * real[:1], real[1:2]]))
    exact = queries @ np.concatenate([real, copy]).T  # columns: ids 1, 2, 3, the group
    scores, found = index.search(queries, 8, SearchParams(ef=16))
    for row in range(2):
        order = np.argsort(-exact[row], kind="stable")
        expected = [m for i in order for m in ([10, 11, 12] if i == 3 else [int(i) + 1])]
        expected_scores = [exact[row, i] for i in order for _ in range(3 if i == 3 else 1)]
        assert found[row].tolist() == [*expected, -1, -1]
        assert np.allclose(scores[row][:6], expected_scores, atol=1e-5)
        assert np.isneginf(scores[row][6:]).all()
    scores, found = index.search(queries[:1], 2, SearchParams(ef=16))
    assert found[0].tolist() == [10, 11]  # the group was first, and k cuts it


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.label)
def test_a_filter_keeps_only_the_allowed_members_of_a_group(config: IndexConfig) -> None:
    ids, vectors, real = _corpus()
    index = backend_for(config).create(config, DIM)
    index.add(ids, vectors)
    allowed = np.array([3, 7, 500, 501, 502], dtype=np.int64)  # two reals, three copies
    _, found = index.search(vectors[-1:], 5, SearchParams(ef=16), allowed)
    assert sorted(found[0].tolist()) == [3, 7, 500, 501, 502]
    assert found[0][:3].tolist() == [500, 501, 502]
    half = ids[::2]
    queries = _unit(real + 0.05 * np.random.default_rng(2).normal(size=real.shape))
    assert _recall(index, vectors, ids, queries, allowed=half) >= 0.95


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.label)
def test_groups_survive_a_snapshot(config: IndexConfig, tmp_path: Path) -> None:
    ids, vectors, _ = _corpus()
    backend = backend_for(config)
    index = backend.create(config, DIM)
    index.add(ids, vectors)
    index.remove(np.array([21]))
    index.save(tmp_path / "snap")
    loaded = backend.load(config, DIM, tmp_path / "snap")
    assert isinstance(loaded, DeduplicatedIndex)
    assert len(loaded) == 2019 and len(loaded.inner) == 21
    assert sorted(loaded.ids().tolist()) == sorted(index.ids().tolist())
    queries = np.concatenate([vectors[:3], vectors[-1:]])
    assert np.array_equal(
        loaded.search(queries, 10, SearchParams(ef=64))[1],
        index.search(queries, 10, SearchParams(ef=64))[1],
    )
    # The saved keys still group a new copy, and the loaded group can hand over its place.
    loaded.add(np.array([5000]), vectors[-1:])
    assert loaded.duplicates() == 1998 + 1
    loaded.remove(np.array([22]))
    assert len(loaded.inner) == 21 and 22 not in set(loaded.ids().tolist())


def test_a_corpus_of_twenty_documents_and_two_thousand_copies_finds_the_real_ones(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = open_appliance()
    appliance.ensure_collection("dups")
    real = [DocumentInput(id=f"real-{i}", text=text) for i, text in enumerate(TOPICS)]
    copies = [DocumentInput(id=f"copy-{i}", text="t") for i in range(2000)]
    for start in range(0, 2000, 500):
        appliance.ingest.upsert("dups", copies[start : start + 500])
    appliance.ingest.upsert("dups", real)
    options = SearchOptions(mode="dense", limit=10)
    for i, text in enumerate(TOPICS):
        found = appliance.search.search("dups", text, options=options).results
        assert found[0].id == f"real-{i}", (text, [hit.id for hit in found[:3]])
    index = appliance.collections.get("dups").index
    assert isinstance(index, DeduplicatedIndex)
    assert len(index) == 2020 and len(index.inner) == 21
