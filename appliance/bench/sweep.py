"""Index-configuration sweeps (`appliance bench`): build each index once, then for each
query-time parameter and filter selectivity measure recall@k against exact search, QPS on one
thread and on all cores, build time, index bytes and process RSS growth, and nDCG@10 when the
corpus has qrels.

Filtered points go through `appliance.index.filtered.filtered_search`, the function
`CollectionManager.search` answers filtered queries with.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from tqdm import tqdm

from appliance.bench.metrics import drop_self_hits, ndcg_at_k
from appliance.bench.synthetic import SyntheticData, make_synthetic, rank_windows
from appliance.config import Settings
from appliance.errors import CollectionNotFound, InvalidIndexSpec
from appliance.index.base import IndexConfig, IndexPlace, IndexServer, SearchParams, VectorIndex
from appliance.index.filtered import VectorLoader, filtered_search
from appliance.index.registry import backend_for

_BUILD_BATCH = 10_000
_BUILD_FILE = "build.json"


# -- data -------------------------------------------------------------------------------------
@dataclass
class BenchDataset:
    """Vectors to index, held-out query vectors, and what filtered and quality points need."""

    key: str
    ids: np.ndarray  # int64, ascending
    vectors: np.ndarray  # (n, dim) float32 unit vectors, row i has id ids[i]
    queries: np.ndarray  # (q, dim)
    rank: np.ndarray  # a random permutation over rows: filters of exact selectivity
    # Loads stored vectors for allowed ids: the exact filtered path. In memory for synthetic
    # data; from SQLite (as the server does) for a corpus.
    load_vectors: VectorLoader
    query_ids: list[str] | None = None
    qrels: dict[str, dict[str, int]] | None = None
    external_ids: dict[int, str] | None = None
    close: Callable[[], None] = field(default=lambda: None)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    def rows(self, ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.ids, ids)


def synthetic_dataset(
    n: int,
    dim: int,
    n_queries: int,
    seed: int = 0,
    store_root: Path | None = None,
    progress: bool = False,
) -> BenchDataset:
    """Synthetic vectors. With `store_root`, they are also kept in a SQLite store there (made
    once, reused), and the exact filtered path loads them from it as the server does; without,
    it gathers them from memory (fast tests; understates the server's cost)."""
    data = make_synthetic(n, dim, n_queries, seed=seed)
    key = f"synthetic-n{n}-d{dim}-s{seed}"

    def from_memory(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return allowed, data.vectors[allowed - 1]

    load: VectorLoader = from_memory
    close: Callable[[], None] = lambda: None  # noqa: E731
    if store_root is not None:
        load, close = _synthetic_store(store_root / key, data, progress=progress)
    return BenchDataset(
        key=key,
        ids=data.ids,
        vectors=data.vectors,
        queries=data.queries,
        rank=data.rank,
        load_vectors=load,
        close=close,
    )


_SYNTHETIC_MODEL = "synthetic"


def _synthetic_store(
    directory: Path, data: SyntheticData, *, progress: bool
) -> tuple[VectorLoader, Callable[[], None]]:
    """Write the synthetic documents (metadata `rank`) and vectors through the store's own
    repository functions, so that vector ids are 1..n; reuse the store on later runs."""
    from appliance.store import collections as collection_store
    from appliance.store import documents as document_store
    from appliance.store.database import Database

    n, dim = data.vectors.shape
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "store.sqlite3"
    db = Database(path)
    with db.read() as session:
        row = collection_store.find_collection(session, "synthetic")
        stored = (
            document_store.vector_ids(session, row.id, _SYNTHETIC_MODEL)
            if row is not None
            else np.empty(0, dtype=np.int64)
        )
    if not np.array_equal(np.sort(stored), data.ids):
        db.close()
        for leftover in directory.glob("store.sqlite3*"):
            leftover.unlink()
        db = Database(path)
        with db.write() as session:
            collection_id = collection_store.create_collection(
                session,
                name="synthetic",
                backend="faiss",
                spec="Flat",
                options={},
                model_id=_SYNTHETIC_MODEL,
            ).id
        batches = range(0, n, 5_000)
        for start in tqdm(batches, desc="store synthetic vectors", disable=not progress):
            rows = range(start, min(n, start + 5_000))
            documents = [
                document_store.NewDocument(
                    str(row),
                    f"doc {row}",
                    data.metadata(row),
                    document_store.content_hash(str(row)),
                )
                for row in rows
            ]
            vectors = {
                str(row): document_store.EmbeddedText(
                    spans=[(0, 1)], vectors=data.vectors[row : row + 1]
                )
                for row in rows
            }
            with db.write() as session:
                document_store.upsert_documents(
                    session, collection_id, _SYNTHETIC_MODEL, documents, vectors
                )

    def load(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with db.read() as session:
            return document_store.load_vectors(session, allowed, dim)

    return load, db.close


def scratch_dir_for(settings: Settings, source: Path, corpus_path: Path) -> Path:
    """`DATA_DIR/bench/<corpus>-<path digest>-<model>[-<backend>]`: a run with another
    embedding backend never reuses another backend's vectors (as eval's key, `vectors_key`)."""
    from appliance.bench.evaluate import vectors_key

    digest = hashlib.sha1(str(corpus_path).encode()).hexdigest()[:8]
    model = vectors_key(_slug(settings.model), settings.backend_for(settings.model))
    return settings.data_path / "bench" / f"{_slug(source.name)}-{digest}-{model}"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "x"


def corpus_dataset(
    source: Path,
    settings: Settings,
    *,
    n_queries: int,
    split: str = "test",
    seed: int = 0,
    progress: bool = True,
) -> BenchDataset:
    """A BEIR directory or a JSONL corpus, embedded once through the normal ingest path into a
    scratch data dir (`DATA_DIR/bench/<corpus>-<model>`); later runs reuse the stored vectors."""
    import msgspec
    from sqlalchemy import select

    from appliance.bench.beir import load_beir
    from appliance.ingest.sources import count_lines, read_jsonl
    from appliance.service import Appliance
    from appliance.store import documents as document_store
    from appliance.store.schema import DocumentRow, VectorRow

    source = source.resolve()
    beir = load_beir(source, split) if source.is_dir() else None
    corpus_path = beir.corpus_path if beir is not None else source
    scratch = scratch_dir_for(settings, source, corpus_path)
    scratch_settings = msgspec.structs.replace(
        settings, data_dir=str(scratch), load_sample=False, default_collection="bench"
    )
    appliance = Appliance(scratch_settings)
    name = "bench"
    try:
        appliance.collections.get(name)
    except CollectionNotFound:
        # A flat index: the scratch collection only keeps the vectors; the sweep builds its own.
        appliance.create_collection(name, IndexConfig(backend="faiss", spec="Flat"))
    live = appliance.collections.get(name)
    with appliance.db.read() as session:
        stored = document_store.count_documents(session, live.id)
    total = count_lines(corpus_path)
    if stored < total:
        # Unchanged documents are skipped by the ingest path, so an interrupted run resumes.
        documents = read_jsonl(corpus_path)
        with tqdm(
            total=total, unit="doc", desc=f"embed {source.name}", disable=not progress
        ) as bar:
            batch: list[Any] = []
            for document in documents:
                batch.append(document)
                if len(batch) == 256:
                    appliance.ingest.upsert(name, batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                appliance.ingest.upsert(name, batch)
                bar.update(len(batch))
        appliance.collections.save_snapshots()

    dim = appliance.encoder.dimension
    id_parts: list[np.ndarray] = []
    vector_parts: list[np.ndarray] = []
    external: dict[int, str] = {}
    with appliance.db.read() as session:
        for ids, vectors in document_store.iter_all_vectors(session, live.id, live.model_id, dim):
            id_parts.append(ids)
            vector_parts.append(vectors)
        rows = session.execute(
            select(VectorRow.id, DocumentRow.external_id)
            .join(DocumentRow, DocumentRow.id == VectorRow.document_id)
            .where(VectorRow.collection_id == live.id, VectorRow.model_id == live.model_id)
        )
        external = {int(vector_id): str(doc_id) for vector_id, doc_id in rows}
    all_ids = np.concatenate(id_parts) if id_parts else np.empty(0, dtype=np.int64)
    all_vectors = np.concatenate(vector_parts) if vector_parts else np.empty((0, dim), np.float32)

    query_ids: list[str] | None = None
    qrels = None
    if beir is not None:
        query_ids = list(beir.queries)[:n_queries]
        qrels = {qid: beir.qrels[qid] for qid in query_ids}
        cache = scratch / f"queries-{_slug(split)}-{len(query_ids)}.npy"
        if cache.is_file():
            queries = np.load(cache)
        else:
            queries = appliance.encoder.encode([beir.queries[qid] for qid in query_ids])
            np.save(cache, queries)
    else:
        # No queries with the corpus: hold some documents out of the index and query with them.
        rng = np.random.default_rng(seed)
        held = rng.choice(len(all_ids), size=min(n_queries, len(all_ids) // 10), replace=False)
        keep = np.ones(len(all_ids), dtype=bool)
        keep[held] = False
        queries = all_vectors[held]
        all_ids, all_vectors = all_ids[keep], np.ascontiguousarray(all_vectors[keep])

    def load(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with appliance.db.read() as session:
            return document_store.load_vectors(session, allowed, dim)

    return BenchDataset(
        key=scratch.name,
        ids=all_ids,
        vectors=all_vectors,
        queries=np.ascontiguousarray(queries, dtype=np.float32),
        rank=np.random.default_rng(seed).permutation(len(all_ids)).astype(np.int64),
        load_vectors=load,
        query_ids=query_ids,
        qrels=qrels,
        external_ids=external,
        close=appliance.close,
    )


# -- results ----------------------------------------------------------------------------------
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
    target = cache / _slug(config.label) if cache is not None else None
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


# -- reporting --------------------------------------------------------------------------------
def points_json(points: Sequence[SweepPoint]) -> str:
    return json.dumps([point.to_json() for point in points], indent=2)


def format_table(points: Sequence[SweepPoint]) -> str:
    header = (
        f"{'index':<34} {'params':<12} {'filter':>7} {'recall':>7} {'qps 1t':>9} {'qps all':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'build s':>8} {'index MB':>9} {'rss MB':>8} {'nDCG@10':>8}"
    )
    lines = [header, "-" * len(header)]
    for p in points:
        params = ",".join(f"{key}={value}" for key, value in p.params.items()) or "-"
        selectivity = "-" if p.filter_selectivity is None else f"{p.filter_selectivity:.3%}"
        ndcg = "-" if p.ndcg_at_10 is None else f"{p.ndcg_at_10:.4f}"
        lines.append(
            f"{p.index:<34} {params:<12} {selectivity:>7} {p.recall:>7.4f} {p.qps_1thread:>9.1f} "
            f"{p.qps_all:>9.1f} {p.latency_p50_ms:>8.3f} {p.latency_p99_ms:>8.3f} "
            f"{p.build_s:>8.2f} {p.index_bytes / 2**20:>9.1f} {p.rss_delta_bytes / 2**20:>8.1f} "
            f"{ndcg:>8}"
        )
    return "\n".join(lines)


def pareto_front(points: Sequence[SweepPoint]) -> list[SweepPoint]:
    """Points no other point beats on both recall and single-thread QPS, fastest first."""
    front: list[SweepPoint] = []
    best_recall = -1.0
    for point in sorted(points, key=lambda p: (-p.qps_1thread, -p.recall)):
        if point.recall > best_recall:
            front.append(point)
            best_recall = point.recall
    return front


def plot_points(points: Sequence[SweepPoint], path: Path) -> None:
    """Recall vs single-thread QPS, one line per configuration (and filter), front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 6))
    series: dict[str, list[SweepPoint]] = {}
    for point in points:
        label = point.index
        if point.filter_selectivity is not None:
            label += f" (filter {point.filter_selectivity:.1%})"
        series.setdefault(label, []).append(point)
    for label, members in series.items():
        members = sorted(members, key=lambda p: p.recall)
        axes.plot(
            [p.recall for p in members], [p.qps_1thread for p in members], marker="o", label=label
        )
    unfiltered = [p for p in points if p.filter_selectivity is None]
    front = pareto_front(unfiltered)
    if front:
        axes.plot(
            [p.recall for p in front],
            [p.qps_1thread for p in front],
            linestyle="--",
            color="black",
            marker="*",
            markersize=12,
            label="Pareto front (unfiltered)",
        )
    axes.set_xlabel(f"recall@{points[0].k if points else 10}")
    axes.set_ylabel("queries per second (1 thread, log)")
    axes.set_yscale("log")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
