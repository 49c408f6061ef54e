"""Filtered search keeps its recall: exact over few matches, a widened selector search over
many. The 100k-document figures of issue 4 are the slow test at the bottom."""

from __future__ import annotations

from collections.abc import Iterator

import faiss
import numpy as np
import pytest

from appliance.bench.datasets import BenchDataset, synthetic_dataset
from appliance.bench.sweep import SweepOptions, run_sweep
from appliance.index.base import IndexConfig, SearchParams, VectorIndex, parse_index_arg
from appliance.index.filtered import exact_top_k, filtered_search
from appliance.index.registry import backend_for


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tiny indexes: OpenMP threads would cost more than the work on a busy 2-core box.
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _index(spec: str, n: int = 2_000, dim: int = 32) -> tuple[VectorIndex, BenchDataset]:
    dataset = synthetic_dataset(n, dim, 20)
    config = parse_index_arg(spec)
    index = backend_for(config).create(config, dim)
    index.add(dataset.ids, dataset.vectors)
    return index, dataset


def _never_load(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raise AssertionError("the index path loads no vectors")


def test_few_matches_are_answered_exactly_from_stored_vectors() -> None:
    index, dataset = _index("hnswlib:M=16,ef_construction=100")
    allowed = dataset.ids[::100]
    loaded: list[int] = []

    def load(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        loaded.append(len(ids))
        return dataset.load_vectors(ids)

    query = dataset.queries[0]
    scores, ids = filtered_search(
        index, query, 5, SearchParams(), allowed, load, exact_threshold=len(allowed)
    )
    assert loaded == [len(allowed)]
    want_scores, want_ids = exact_top_k(query, allowed, dataset.vectors[allowed - 1], 5)
    assert ids.tolist() == want_ids.tolist()
    assert np.allclose(scores, want_scores)


def test_many_matches_go_through_the_index_with_a_selector() -> None:
    index, dataset = _index("faiss:HNSW16,Flat")
    allowed = dataset.ids[dataset.ids % 2 == 0]

    _, ids = filtered_search(
        index, dataset.queries[1], 10, SearchParams(ef=32), allowed, _never_load, exact_threshold=10
    )
    assert len(ids) == 10 and set(ids.tolist()) <= set(allowed.tolist())


def test_no_match_and_flat_indexes() -> None:
    index, dataset = _index("faiss:Flat")
    empty = np.empty(0, dtype=np.int64)
    scores, ids = filtered_search(
        index,
        dataset.queries[0],
        10,
        SearchParams(),
        empty,
        dataset.load_vectors,
        exact_threshold=5,
    )
    assert len(scores) == len(ids) == 0
    # A flat index answers exactly with its selector: no need to load vectors, however few.
    allowed = dataset.ids[:3]
    _, ids = filtered_search(
        index,
        dataset.queries[0],
        10,
        SearchParams(),
        allowed,
        _never_load,
        exact_threshold=100,
    )
    assert sorted(ids.tolist()) == allowed.tolist()


@pytest.mark.slow
def test_filtered_recall_on_100k_documents() -> None:
    """Issue 4: recall@10 >= 0.95 at 0.1 %, 1 %, 10 % and 50 % on 100k documents (384 dims)
    for the default index and faiss HNSW32,Flat, with the default strategy (exact at 0.1 % and
    1 %, the widened index search at 10 % and 50 %). Builds two 100k indexes (about 4 minutes
    each on a busy 2-core box).

    Not asserted: the index path alone at 0.1 % (faiss HNSW32 reaches only ~0.89 there, its
    widened ef being capped at 4096), which is why few matches are answered exactly."""
    exact_threshold = 20_000
    dataset = synthetic_dataset(100_000, 384, 200)
    default = IndexConfig(backend="hnswlib", spec="M=32,ef_construction=200")
    options = SweepOptions(
        indexes=[default, parse_index_arg("faiss:HNSW32,Flat")],
        efs=(128,),
        selectivities=(0.001, 0.01, 0.1, 0.5),
        filter_queries=100,
        exact_threshold=exact_threshold,
        progress=False,
    )
    points = run_sweep(dataset, options)
    filtered = [p for p in points if p.filter_selectivity is not None]
    assert len(filtered) == 8
    for point in filtered:
        assert point.recall >= 0.95, point
