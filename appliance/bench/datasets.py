"""The data an index sweep (`appliance bench`) runs on: synthetic vectors, or a corpus (a BEIR
directory or a JSONL file) embedded once through the normal ingest path into a scratch data
dir and reused by later runs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from appliance.bench.synthetic import SyntheticData, make_synthetic
from appliance.config import Settings
from appliance.errors import CollectionNotFound
from appliance.index.base import IndexConfig
from appliance.index.filtered import VectorLoader


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
    model = vectors_key(slug(settings.model), settings.backend_for(settings.model))
    return settings.data_path / "bench" / f"{slug(source.name)}-{digest}-{model}"


def slug(text: str) -> str:
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
    from appliance.ingest.files import ingest_file
    from appliance.ingest.sources import count_lines
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
        with tqdm(
            total=total, unit="doc", desc=f"embed {source.name}", disable=not progress
        ) as bar:
            ingest_file(appliance.ingest, name, corpus_path, progress=bar.update)
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
        cache = scratch / f"queries-{slug(split)}-{len(query_ids)}.npy"
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
