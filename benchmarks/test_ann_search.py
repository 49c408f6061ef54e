"""ANN search per configuration: the appliance's `VectorIndex.search` against the raw faiss /
hnswlib call on the same index object, same parameters, one query per call on one thread
(as the API searches). Target: appliance >= 0.9x raw QPS."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from appliance.bench.datasets import BenchDataset, synthetic_dataset
from appliance.index.base import SearchParams, VectorIndex, parse_index_arg
from appliance.index.registry import backend_for

N, DIM, QUERIES, K = 10_000, 384, 200, 10
CONFIGS = {
    "faiss:Flat": {},
    "faiss:HNSW32,Flat": {"ef": 64},
    "faiss:IVF256,Flat": {"nprobe": 16},
    "hnswlib:M=32,ef_construction=200": {"ef": 64},
}
_BUILT: dict[str, VectorIndex] = {}


@pytest.fixture(scope="module")
def dataset() -> BenchDataset:
    return synthetic_dataset(N, DIM, QUERIES, seed=1)


def _index(label: str, dataset: BenchDataset) -> VectorIndex:
    if label not in _BUILT:
        config = parse_index_arg(label)
        index = backend_for(config).create(config, DIM)
        index.add(dataset.ids, dataset.vectors)
        _BUILT[label] = index
    return _BUILT[label]


def _raw_search(index: Any, params: dict[str, int]) -> Any:
    """The backend's own search call on the same underlying object."""
    import faiss

    inner = index._index
    if index.config.backend == "hnswlib":
        inner.set_ef(params["ef"])
        return lambda q: inner.knn_query(q, k=K, num_threads=1)
    if "ef" in params:
        search_params = faiss.SearchParametersHNSW(efSearch=params["ef"])
    elif "nprobe" in params:
        search_params = faiss.SearchParametersIVF(nprobe=params["nprobe"])
    else:
        search_params = None
    return lambda q: inner.search(q, K, params=search_params)


# Each appliance measurement right after its baseline, so both see the same machine load.
@pytest.mark.parametrize(
    ("label", "role"), [(label, role) for label in CONFIGS for role in ("baseline", "appliance")]
)
def test_ann_search(
    benchmark: Any, report: Any, single_thread: None, dataset: BenchDataset, label: str, role: str
) -> None:
    index = _index(label, dataset)
    params = CONFIGS[label]
    queries = [np.ascontiguousarray(q.reshape(1, -1)) for q in dataset.queries]
    if role == "appliance":
        search_params = SearchParams(**params)

        def run() -> None:
            for query in queries:
                index.search(query, K, search_params)
    else:
        raw = _raw_search(index, params)

        def run() -> None:
            for query in queries:
                raw(query)

    benchmark.group = f"ann {label} {params}"
    benchmark.extra_info["queries_per_round"] = QUERIES
    benchmark.pedantic(run, rounds=7, warmup_rounds=1)
    report.pair(benchmark, f"ann search {label}", role, kind="throughput", target=0.9)
