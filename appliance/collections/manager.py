"""Live collections: each collection's vector index, kept equal to the store.

The store is the source of truth. An index is loaded from its snapshot and caught up with the
store by a set difference of vector ids (vectors are immutable and ids never reused), or rebuilt
from the stored vectors; nothing is ever re-embedded here. Writes made by this process are
applied incrementally; writes made by another process (the CLI beside a server) are noticed
through the collection's generation counter and caught up before the next search.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import ColumnElement

from appliance.embedding.chunking import DEFAULT_OVERLAP, ChunkingConfig
from appliance.errors import CollectionNotFound
from appliance.index.base import IndexConfig, SearchParams, VectorIndex
from appliance.index.filtered import filtered_search
from appliance.index.registry import backend_for
from appliance.index.snapshots import (
    SnapshotInfo,
    discard_snapshot,
    load_snapshot,
    save_snapshot,
)
from appliance.store import collections as collection_store
from appliance.store import documents as document_store
from appliance.store.database import Database
from appliance.store.documents import WriteResult
from appliance.store.schema import CollectionRow

log = logging.getLogger(__name__)
# Options that describe how the stored vectors were made, not how they are indexed.
_CONTENT_OPTIONS = ("chunking", "chunk_tokens", "chunk_overlap")


@dataclass
class LiveCollection:
    id: int
    name: str
    config: IndexConfig
    model_id: str
    index: VectorIndex
    generation: int
    # Writers of one collection take turns (SQLite would serialise them anyway); the index
    # lock is held only while the index itself is read or changed, never while embedding.
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    index_lock: threading.RLock = field(default_factory=threading.RLock)
    dirty: bool = False

    @property
    def chunking(self) -> ChunkingConfig:
        options = self.config.options
        return ChunkingConfig(
            enabled=bool(options.get("chunking", True)),
            max_tokens=options.get("chunk_tokens"),
            overlap=int(options.get("chunk_overlap", DEFAULT_OVERLAP)),
        )


class CollectionManager:
    def __init__(
        self, db: Database, index_dir: Path, *, dimension: int, exact_filter_threshold: int
    ) -> None:
        self.db = db
        self.index_dir = index_dir
        self.dimension = dimension
        self.exact_filter_threshold = exact_filter_threshold
        self._live: dict[str, LiveCollection] = {}
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
    def open_all(self) -> None:
        with self.db.read() as session:
            rows = collection_store.list_collections(session)
        for row in rows:
            self._live[row.name] = self._open(row)

    def _snapshot_dir(self, row_id: int) -> Path:
        return self.index_dir / f"collection-{row_id}"

    def _open(self, row: CollectionRow) -> LiveCollection:
        config = IndexConfig(
            backend=row.index_backend, spec=row.index_spec, options=dict(row.index_options)
        )
        loaded = load_snapshot(self._snapshot_dir(row.id), config, self.dimension, row.model_id)
        if loaded is None:
            index = backend_for(config).create(config, self.dimension)
        else:
            index = loaded[0]
        live = LiveCollection(
            id=row.id,
            name=row.name,
            config=config,
            model_id=row.model_id,
            index=index,
            generation=-1,
        )
        if loaded is None or not self._snapshot_current(live, loaded[1]):
            self.catch_up(live)
        return live

    def _snapshot_current(self, live: LiveCollection, info: SnapshotInfo) -> bool:
        """No write since the snapshot: same generation and highest vector id (ids are never
        reused, and every write bumps the generation). Then the id set difference is skipped."""
        with self.db.read() as session:
            generation = collection_store.collection_generation(session, live.id)
            max_id = document_store.max_vector_id(session, live.id, live.model_id)
        if info.generation != generation or info.max_id != max_id:
            return False
        live.generation = generation
        return True

    def save_snapshots(self) -> None:
        for live in list(self._live.values()):
            self.save_snapshot(live)

    def save_snapshot(self, live: LiveCollection) -> None:
        with live.write_lock, live.index_lock:
            if not live.dirty:
                return
            ids = live.index.ids()
            max_id = int(ids.max()) if len(ids) else 0
            save_snapshot(
                live.index,
                self._snapshot_dir(live.id),
                model_id=live.model_id,
                max_id=max_id,
                generation=live.generation,
            )
            live.dirty = False

    # -- catalogue ------------------------------------------------------------------------
    def names(self) -> list[str]:
        return sorted(self._live)

    def create(self, name: str, config: IndexConfig, model_id: str) -> LiveCollection:
        backend_for(config).validate(config, self.dimension)
        with self._lock:
            with self.db.write() as session:
                row = collection_store.create_collection(
                    session,
                    name=name,
                    backend=config.backend,
                    spec=config.spec,
                    options=config.options,
                    model_id=model_id,
                )
            live = LiveCollection(
                id=row.id,
                name=name,
                config=config,
                model_id=model_id,
                index=backend_for(config).create(config, self.dimension),
                generation=0,
                dirty=True,
            )
            self._live[name] = live
            return live

    def reconfigure(self, name: str, config: IndexConfig) -> LiveCollection:
        """Switch a collection to another index configuration, built from the stored vectors
        (never re-embedded). Chunking options stay: the stored vectors were made with them."""
        backend_for(config).validate(config, self.dimension)
        live = self.get(name)
        kept = {k: v for k, v in live.config.options.items() if k in _CONTENT_OPTIONS}
        config = IndexConfig(
            backend=config.backend, spec=config.spec, options={**config.options, **kept}
        )
        if config == live.config:
            return live
        index = backend_for(config).create(config, self.dimension)
        with live.write_lock:
            with self.db.read() as session:
                for ids, vectors in document_store.iter_all_vectors(
                    session, live.id, live.model_id, self.dimension
                ):
                    index.add(ids, vectors)
            with self.db.write() as session:
                row = collection_store.get_collection(session, name)
                row.index_backend, row.index_spec = config.backend, config.spec
                row.index_options = dict(config.options)
            with live.index_lock:
                live.index, live.config, live.dirty = index, config, True
        log.info("collection %s: index rebuilt as %s from stored vectors", name, config.label)
        return live

    def drop(self, name: str) -> None:
        with self._lock:
            with self.db.write() as session:
                collection_store.delete_collection(session, name)
            live = self._live.pop(name, None)
            if live is not None:
                discard_snapshot(self._snapshot_dir(live.id))

    def peek(self, name: str) -> LiveCollection | None:
        """The live collection as this process last saw it, without asking the store."""
        return self._live.get(name)

    def get(self, name: str) -> LiveCollection:
        """The live collection, caught up with writes other processes made to the store."""
        live = self._live.get(name)
        if live is None:
            live = self._discover(name)
        with self.db.read() as session:
            try:
                generation = collection_store.collection_generation(session, live.id)
            except CollectionNotFound:
                self._live.pop(name, None)
                raise CollectionNotFound(f"collection {name!r} does not exist") from None
        if generation != live.generation:
            with live.write_lock:
                self.catch_up(live)
        return live

    def _discover(self, name: str) -> LiveCollection:
        """A collection another process created since start-up."""
        with self._lock:
            if name in self._live:
                return self._live[name]
            with self.db.read() as session:
                row = collection_store.get_collection(session, name)
            live = self._open(row)
            self._live[name] = live
            return live

    # -- keeping the index equal to the store -----------------------------------------------
    def catch_up(self, live: LiveCollection) -> None:
        """Bring the index to the store's state by id set difference. Idempotent."""
        with self.db.read() as session:
            generation = collection_store.collection_generation(session, live.id)
            stored = document_store.vector_ids(session, live.id, live.model_id)
            with live.index_lock:
                indexed = live.index.ids()
            missing = np.setdiff1d(stored, indexed, assume_unique=True)
            extra = np.setdiff1d(indexed, stored, assume_unique=True)
            with live.index_lock:
                if len(extra):
                    live.index.remove(extra)
                for start in range(0, len(missing), 50_000):
                    ids, vectors = document_store.load_vectors(
                        session, missing[start : start + 50_000], self.dimension
                    )
                    live.index.add(ids, vectors)
                live.generation = generation
                if len(missing) or len(extra):
                    live.dirty = True
                    log.info(
                        "collection %s: index caught up with the store (+%d, -%d vectors)",
                        live.name,
                        len(missing),
                        len(extra),
                    )

    def apply(self, live: LiveCollection, result: WriteResult) -> None:
        """Apply a committed write. Call with live.write_lock held."""
        if result.generation == 0:
            return
        if result.generation != live.generation + 1:
            # Another process wrote in between: the set difference covers both writes.
            self.catch_up(live)
            return
        with live.index_lock:
            if result.removed_ids:
                live.index.remove(np.asarray(result.removed_ids, dtype=np.int64))
            if result.added_ids and result.added_vectors is not None:
                live.index.add(np.asarray(result.added_ids, dtype=np.int64), result.added_vectors)
            live.generation = result.generation
            live.dirty = True

    # -- dense retrieval ------------------------------------------------------------------
    def search(
        self,
        live: LiveCollection,
        query: np.ndarray,
        k: int,
        params: SearchParams,
        where: ColumnElement[bool] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, vector ids) for one query vector, restricted to documents matching
        `where`. Few matches are searched exactly over their stored vectors; more go through
        the index with an id selector."""
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if where is None:
            with live.index_lock:
                scores, ids = live.index.search(query, k, params)
            return _valid(scores[0], ids[0])
        with self.db.read() as session:
            allowed = document_store.vector_ids(session, live.id, live.model_id, where)
            return filtered_search(
                live.index,
                query[0],
                k,
                params,
                allowed,
                lambda ids: document_store.load_vectors(session, ids, self.dimension),
                exact_threshold=self.exact_filter_threshold,
                index_lock=live.index_lock,
            )


def _valid(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ids >= 0
    return scores[keep], ids[keep]
