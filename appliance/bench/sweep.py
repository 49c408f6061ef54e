"""Index-configuration sweeps (`appliance bench`): build each index once, then for each
query-time parameter and filter selectivity measure recall@k against exact search, QPS on one
thread and on all cores, build time, index bytes and process RSS growth, and nDCG@10 when the
corpus has qrels. The data comes from `bench.datasets`; tables, JSON and plots from
`bench.report`.

Filtered points go through `appliance.index.filtered.filtered_search`, the function
`CollectionManager.search` answers filtered queries with.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from tqdm import tqdm

from appliance.bench.datasets import BenchDataset, slug
from appliance.bench.metrics import drop_self_hits, ndcg_at_k
from appliance.bench.synthetic import rank_windows
from appliance.errors import InvalidIndexSpec
from appliance.index.base import IndexConfig, IndexPlace, IndexServer, SearchParams, VectorIndex
from appliance.index.filtered import filtered_search
from appliance.index.registry import backend_for

_BUILD_BATCH = 10_000
_BUILD_FILE = "build.json"


@dataclass
class SweepPoint:
    index: str
    params: dict[str, int]
    filter_selectivity: float | None
    k: int
    recall: float
    qps_1thread: float
    qps_all: float
    build_s: float
    index_bytes: int
    rss_delta_bytes: int
    ndcg_at_10: float | None
    # Terminal table only: per query, one thread.
    latency_p50_ms: float
    latency_p99_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "params": self.params,
            "filter_selectivity": self.filter_selectivity,
            "k": self.k,
            f"recall@{self.k}": round(self.recall, 4),
            "qps_1thread": round(self.qps_1thread, 1),
            "qps_all": round(self.qps_all, 1),
            "build_s": round(self.build_s, 3),
            "index_bytes": self.index_bytes,
            "rss_delta_bytes": self.rss_delta_bytes,
            "ndcg@10": None if self.ndcg_at_10 is None else round(self.ndcg_at_10, 4),
        }


@dataclass(frozen=True)
class SweepOptions:
    indexes: Sequence[IndexConfig]
    efs: Sequence[int] = (16, 32, 64, 128)
    nprobes: Sequence[int] = (8, 16, 64)
    k: int = 10
    selectivities: Sequence[float] = ()
    # Filtered points run one query per call; fewer of them keep a sweep short.
    filter_queries: int = 200
    exact_threshold: int = 20_000
    progress: bool = True
    # Keep built indexes here and load them on later runs instead of rebuilding.
    index_cache: Path | None = None
    seed: int = 0
    # Where server-side backends (milvus) build; each bench index there is dropped after.
    index_server: IndexServer | None = None


def query_params(config: IndexConfig, efs: Sequence[int], nprobes: Sequence[int]) -> list[dict]:
    """The query-time parameters that apply to an index configuration."""
    accepted = backend_for(config).traits(config).query_params
    if "ef" in accepted:
        return [{"ef": int(ef)} for ef in efs]
    if "nprobe" in accepted:
        return [{"nprobe": int(nprobe)} for nprobe in nprobes]
    return [{}]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _set_threads(index: VectorIndex, threads: int) -> None:
    import faiss

    faiss.omp_set_num_threads(threads)
    if hasattr(index, "num_threads"):
        index.num_threads = threads


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


# -- exact answers ----------------------------------------------------------------------------
def exact_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of each query's exact top-k by inner product, best first."""
    out = np.empty((len(queries), min(k, len(vectors))), dtype=np.int64)
    for start in range(0, len(queries), 256):
        scores = queries[start : start + 256] @ vectors.T
        top = np.argpartition(-scores, out.shape[1] - 1, axis=1)[:, : out.shape[1]]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start : start + 256] = np.take_along_axis(top, order, axis=1)
    return out


def recall_at_k(found: Sequence[np.ndarray], truth: Sequence[np.ndarray], k: int) -> float:
    total = 0.0
    for got, want in zip(found, truth, strict=True):
        want = want[:k]
        if len(want) == 0:
            total += 1.0
            continue
        total += len(np.intersect1d(got[:k], want)) / len(want)
    return total / max(1, len(truth))


# -- building ---------------------------------------------------------------------------------
@dataclass
class BuiltIndex:
    index: VectorIndex
    build_s: float
    index_bytes: int
    rss_delta_bytes: int


def build_index(
    config: IndexConfig,
    dataset: BenchDataset,
    *,
    progress: bool,
    cache: Path | None = None,
    server: IndexServer | None = None,
) -> BuiltIndex:
    """Build (on all cores) and measure; with `cache`, load a previous build and its figures.
    A server-side index is built afresh on `server` (never cached)."""
    backend = backend_for(config)
    place = None
    if backend.persistent:
        if server is None:
            raise InvalidIndexSpec(f"{config.label} builds on a server: give the bench one")
        cache = None
        # Collection id 0 is never an appliance collection's: the bench's own namespace slot.
        place = IndexPlace(server, 0, f"bench-{dataset.key}")
    target = cache / slug(config.label) if cache is not None else None
    if target is not None and (target / _BUILD_FILE).is_file():
        recorded = json.loads((target / _BUILD_FILE).read_text())
        if recorded.get("count") == len(dataset.ids):
            index = backend.load(config, dataset.dimension, target)
            return BuiltIndex(
                index, recorded["build_s"], recorded["index_bytes"], recorded["rss_delta_bytes"]
            )
    before = _rss()
    started = time.perf_counter()
    index = backend.create(config, dataset.dimension, place)
    if len(index):
        index.remove(index.ids())  # left by an interrupted earlier bench
    _set_threads(index, cores())
    with tqdm(
        total=len(dataset.ids), unit="vec", desc=f"build {config.label}", disable=not progress
    ) as bar:
        for start in range(0, len(dataset.ids), _BUILD_BATCH):
            stop = start + _BUILD_BATCH
            index.add(dataset.ids[start:stop], dataset.vectors[start:stop])
            bar.update(min(stop, len(dataset.ids)) - start)
    built = BuiltIndex(index, time.perf_counter() - started, index.nbytes(), _rss() - before)
    if target is not None:
        index.save(target)
        record = {
            "count": len(dataset.ids),
            "build_s": built.build_s,
            "index_bytes": built.index_bytes,
            "rss_delta_bytes": built.rss_delta_bytes,
        }
        (target / _BUILD_FILE).write_text(json.dumps(record))
    return built


# -- measuring --------------------------------------------------------------------------------
def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def _unfiltered_point(
    built: BuiltIndex,
    dataset: BenchDataset,
    params: dict[str, int],
    truth: np.ndarray,
    options: SweepOptions,
) -> SweepPoint:
    index, k = built.index, options.k
    search_params = SearchParams(**params)
    queries = dataset.queries
    _set_threads(index, 1)
    index.search(queries[: min(10, len(queries))], k, search_params)  # warm up
    latencies: list[float] = []
    found: list[np.ndarray] = []
    # One query per call, as the API serves them.
    started = time.perf_counter()
    for row in range(len(queries)):
        tick = time.perf_counter()
        _, ids = index.search(queries[row : row + 1], k, search_params)
        latencies.append(time.perf_counter() - tick)
        found.append(ids[0])
    qps_1 = len(queries) / (time.perf_counter() - started)
    # All cores: one batch call, parallel over queries.
    _set_threads(index, cores())
    started = time.perf_counter()
    index.search(queries, k, search_params)
    qps_all = len(queries) / (time.perf_counter() - started)

    truth_ids = [dataset.ids[row] for row in truth]
    ndcg = None
    if dataset.qrels is not None and dataset.query_ids is not None and dataset.external_ids:
        names = dataset.external_ids
        run: dict[str, dict[str, float]] = {}
        for qid, ids in zip(dataset.query_ids, found, strict=True):
            ranked = [names[int(i)] for i in ids if i >= 0]
            # Scores only order the ids here: descending by rank; a document whose several
            # chunks were hit keeps its best rank.
            hits: dict[str, float] = {}
            for pos, doc in enumerate(ranked):
                hits.setdefault(doc, float(len(ranked) - pos))
            run[qid] = hits
        ndcg = ndcg_at_k(drop_self_hits(run), dataset.qrels, 10)
    return SweepPoint(
        index=built.index.config.label,
        params=params,
        filter_selectivity=None,
        k=k,
        recall=recall_at_k(found, truth_ids, k),
        qps_1thread=qps_1,
        qps_all=qps_all,
        build_s=built.build_s,
        index_bytes=built.index_bytes,
        rss_delta_bytes=built.rss_delta_bytes,
        ndcg_at_10=ndcg,
        latency_p50_ms=statistics.median(latencies) * 1000,
        latency_p99_ms=_percentile(latencies, 0.99) * 1000,
    )


@dataclass(frozen=True)
class FilterCase:
    selectivity: float
    queries: np.ndarray
    allowed: list[np.ndarray]
    truth: list[np.ndarray]  # exact filtered top-k ids per query


def filter_cases(dataset: BenchDataset, options: SweepOptions) -> Iterator[FilterCase]:
    """Per selectivity: one allowed-id set of exactly round(s * n) ids per query (a window of
    the synthetic `rank` field) and the exact top-k among them."""
    n_queries = min(options.filter_queries, len(dataset.queries))
    queries = dataset.queries[:n_queries]
    for selectivity in options.selectivities:
        count = max(1, min(len(dataset.ids), round(selectivity * len(dataset.ids))))
        allowed = rank_windows(dataset.rank, dataset.ids, count, n_queries, seed=options.seed)
        truth = []
        for query, ids in zip(queries, allowed, strict=True):
            scores = dataset.vectors[dataset.rows(ids)] @ query
            top = np.argsort(-scores, kind="stable")[: options.k]
            truth.append(ids[top])
        yield FilterCase(selectivity, queries, allowed, truth)


def _filtered_point(
    built: BuiltIndex,
    dataset: BenchDataset,
    params: dict[str, int],
    case: FilterCase,
    options: SweepOptions,
) -> SweepPoint:
    index, k = built.index, options.k
    search_params = SearchParams(**params)

    def one(row: int) -> np.ndarray:
        _, ids = filtered_search(
            index,
            case.queries[row],
            k,
            search_params,
            case.allowed[row],
            dataset.load_vectors,
            exact_threshold=options.exact_threshold,
        )
        return ids

    _set_threads(index, 1)
    one(0)  # warm up
    latencies: list[float] = []
    found: list[np.ndarray] = []
    started = time.perf_counter()
    for row in range(len(case.queries)):
        tick = time.perf_counter()
        found.append(one(row))
        latencies.append(time.perf_counter() - tick)
    qps_1 = len(case.queries) / (time.perf_counter() - started)
    # All cores: concurrent callers, one query each (a filter is per query).
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=cores()) as pool:
        list(pool.map(one, range(len(case.queries))))
    qps_all = len(case.queries) / (time.perf_counter() - started)
    return SweepPoint(
        index=built.index.config.label,
        params=params,
        filter_selectivity=case.selectivity,
        k=k,
        recall=recall_at_k(found, case.truth, k),
        qps_1thread=qps_1,
        qps_all=qps_all,
        build_s=built.build_s,
        index_bytes=built.index_bytes,
        rss_delta_bytes=built.rss_delta_bytes,
        ndcg_at_10=None,
        latency_p50_ms=statistics.median(latencies) * 1000,
        latency_p99_ms=_percentile(latencies, 0.99) * 1000,
    )


def run_sweep(dataset: BenchDataset, options: SweepOptions) -> list[SweepPoint]:
    """Every (index, query parameter, filter selectivity) point; each index built once."""
    truth = exact_neighbours(dataset.vectors, dataset.queries, options.k)
    cases = list(filter_cases(dataset, options))
    points: list[SweepPoint] = []
    threads_before = _omp_threads()
    try:
        for config in options.indexes:
            built = build_index(
                config,
                dataset,
                progress=options.progress,
                cache=options.index_cache,
                server=options.index_server,
            )
            grid = query_params(config, options.efs, options.nprobes)
            total = len(grid) * (1 + len(cases))
            try:
                with tqdm(
                    total=total,
                    unit="point",
                    desc=f"measure {config.label}",
                    disable=not options.progress,
                ) as bar:
                    for params in grid:
                        points.append(_unfiltered_point(built, dataset, params, truth, options))
                        bar.update()
                        for case in cases:
                            points.append(_filtered_point(built, dataset, params, case, options))
                            bar.update()
            finally:
                backend_for(config).discard(built.index)
            # Freed (by reference count) before the next build measures its RSS growth.
            del built
    finally:
        import faiss

        faiss.omp_set_num_threads(threads_before)
    return points


def _omp_threads() -> int:
    import faiss

    return int(faiss.omp_get_max_threads())
