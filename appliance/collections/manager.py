"""Live collections: each collection's vector index, kept equal to the store.

The store is the source of truth. An index is loaded from its snapshot and caught up with the
store by a set difference of vector ids (vectors are immutable and ids never reused), or rebuilt
from the stored vectors; nothing is ever re-embedded here. An index on a server (Milvus) keeps
its own state: it is opened as the server holds it and caught up the same way, without a
snapshot. Writes made by this process are applied incrementally; writes made by another
process (the CLI beside a server) are noticed through the collection's generation counter and
caught up before the next search.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from appliance.embedding.chunking import DEFAULT_OVERLAP, ChunkingConfig
from appliance.errors import CollectionNotFound, DocumentNotFound
from appliance.index.base import IndexConfig, IndexPlace, IndexServer, SearchParams, VectorIndex
from appliance.index.filtered import filtered_search
from appliance.index.registry import backend_for
from appliance.index.snapshots import (
    SnapshotInfo,
    discard_snapshot,
    load_snapshot,
    save_snapshot,
)
from appliance.keyword.index import KeywordIndex
from appliance.store import collections as collection_store
from appliance.store import documents as document_store
from appliance.store import versions as version_store
from appliance.store.database import Database
from appliance.store.documents import ConcurrentWrite, WriteResult
from appliance.store.schema import CollectionRow

log = logging.getLogger(__name__)
# Options that describe how the stored vectors were made, not how they are indexed.
_CONTENT_OPTIONS = ("chunking", "chunk_tokens", "chunk_overlap")


@dataclass(frozen=True)
class ActiveVersion:
    """The model a collection searches with and the index of that model's vectors. Replaced as
    one object on a switch, so a search that took it never pairs one model's query vector
    with another model's index."""

    model_id: str
    dimension: int
    index: VectorIndex


@dataclass(frozen=True)
class CollectionStatus:
    """What a collection holds now: the store's counts beside its index's."""

    documents: int
    generation: int
    vectors_indexed: int
    index_bytes: int


@dataclass(frozen=True)
class StoredDocument:
    id: str
    text: str
    metadata: dict[str, Any]
    content_hash: str
    created_at: datetime
    updated_at: datetime


@dataclass
class LiveCollection:
    id: int
    name: str
    config: IndexConfig
    active: ActiveVersion
    generation: int
    # Writers of one collection take turns (SQLite would serialise them anyway); the index
    # lock is held only while the index itself is read or changed, never while embedding.
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    index_lock: threading.RLock = field(default_factory=threading.RLock)
    dirty: bool = False
    # The store's data_version when this collection was last compared with it.
    checked_version: int = -1
    # BM25 over the collection's documents, derived from the store like the vector index.
    keyword: KeywordIndex = field(default_factory=KeywordIndex)

    @property
    def model_id(self) -> str:
        return self.active.model_id

    @property
    def index(self) -> VectorIndex:
        return self.active.index

    @property
    def dimension(self) -> int:
        return self.active.dimension

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
        self,
        db: Database,
        index_dir: Path,
        *,
        dimension_of: Callable[[str], int],
        exact_filter_threshold: int,
        index_server: IndexServer | None = None,
        repair_server_indexes: bool = True,
    ) -> None:
        """`dimension_of(model_id)`: the dimension of a model's vectors. `index_server`: where
        server-side backends (milvus) keep their indexes. `repair_server_indexes=False` opens
        those as the server holds them, never catching them up (what `verify` compares)."""
        self.db = db
        self.index_dir = index_dir
        self.dimension_of = dimension_of
        self.exact_filter_threshold = exact_filter_threshold
        self.index_server = index_server
        self.repair_server_indexes = repair_server_indexes
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

    def _keyword_dir(self, row_id: int) -> Path:
        return self.index_dir / f"keyword-{row_id}"

    def _place(self, collection_id: int, model_id: str) -> IndexPlace | None:
        if self.index_server is None:
            return None
        return IndexPlace(self.index_server, collection_id, model_id)

    def _new_index(
        self, collection_id: int, model_id: str, dimension: int, config: IndexConfig
    ) -> VectorIndex:
        """An empty local index, or a server-side one as its server holds it."""
        return backend_for(config).create(config, dimension, self._place(collection_id, model_id))

    def _open(self, row: CollectionRow) -> LiveCollection:
        config = _config_of(row)
        dimension = self.dimension_of(row.model_id)
        loaded = None
        if not backend_for(config).persistent:
            loaded = load_snapshot(self._snapshot_dir(row.id), config, dimension, row.model_id)
        if loaded is None:
            index = self._new_index(row.id, row.model_id, dimension, config)
        else:
            index = loaded[0]
        live = LiveCollection(
            id=row.id,
            name=row.name,
            config=config,
            active=ActiveVersion(row.model_id, dimension, index),
            generation=-1,
            keyword=KeywordIndex.load(self._keyword_dir(row.id)) or KeywordIndex(),
        )
        if loaded is None or not self._snapshot_current(live, loaded[1]):
            self.catch_up(live)
        if live.keyword.generation != live.generation:
            with self.db.read() as session:
                self._catch_up_keyword(session, live)
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
            if live.keyword.saved_generation != live.keyword.generation:
                live.keyword.save(self._keyword_dir(live.id))
            if not live.dirty:
                return
            if backend_for(live.config).persistent:
                live.dirty = False  # the server keeps the index itself
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
        """The collections this process has open."""
        return sorted(self._live)

    def stored_names(self) -> list[str]:
        """Every collection in the store, open here or not."""
        with self.db.read() as session:
            return [row.name for row in collection_store.list_collections(session)]

    def status(self, live: LiveCollection) -> CollectionStatus:
        with self.db.read() as session:
            documents = document_store.count_documents(session, live.id)
            generation = collection_store.collection_generation(session, live.id)
        with live.index_lock:
            return CollectionStatus(
                documents=documents,
                generation=generation,
                vectors_indexed=len(live.index),
                index_bytes=live.index.nbytes(),
            )

    def document(self, name: str, doc_id: str) -> StoredDocument:
        """One stored document by its id; DocumentNotFound names both."""
        live = self.get(name)
        with self.db.read() as session:
            row = document_store.get_document(session, live.id, doc_id)
            if row is None:
                raise DocumentNotFound(f"document {doc_id!r} is not in collection {name!r}")
            return StoredDocument(
                id=row.external_id,
                text=row.text,
                metadata=row.meta,
                content_hash=row.content_hash,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )

    def create(self, name: str, config: IndexConfig, model_id: str) -> LiveCollection:
        dimension = self.dimension_of(model_id)
        backend_for(config).validate(config, dimension)
        with self._lock:
            with self.db.write() as session:
                row = collection_store.create_collection(
                    session,
                    name=name,
                    backend=config.backend,
                    spec=config.spec,
                    options=config.options,
                    model_id=model_id,
                    dimension=dimension,
                )
                # Inside the transaction: a server that refuses the index leaves no row.
                index = self._new_index(row.id, model_id, dimension, config)
                if len(index):
                    # A server collection left by an earlier store under this namespace.
                    index.remove(index.ids())
            live = LiveCollection(
                id=row.id,
                name=name,
                config=config,
                active=ActiveVersion(model_id, dimension, index),
                generation=0,
                dirty=True,
            )
            self._live[name] = live
            return live

    def reconfigure(self, name: str, config: IndexConfig) -> LiveCollection:
        """Switch a collection to another index configuration, built from the stored vectors
        (never re-embedded). Chunking options stay: the stored vectors were made with them.
        The build runs while searches and writes go on against the current index; the new
        one is caught up with the writes made meanwhile, then swapped in."""
        live = self.get(name)
        backend_for(config).validate(config, live.dimension)
        kept = {k: v for k, v in live.config.options.items() if k in _CONTENT_OPTIONS}
        config = IndexConfig(
            backend=config.backend, spec=config.spec, options={**config.options, **kept}
        )
        if config == live.config:
            return live
        active = live.active
        index = self.build_index(live.id, active.model_id, active.dimension, config)
        with live.write_lock:
            with self.db.read() as session:
                self._sync(session, live.id, active.model_id, index, active.dimension)
            with self.db.write() as session:
                row = collection_store.get_collection(session, name)
                row.index_backend, row.index_spec = config.backend, config.spec
                row.index_options = dict(config.options)
            with live.index_lock:
                previous = live.config
                live.config, live.dirty = config, True
                live.active = ActiveVersion(active.model_id, active.dimension, index)
            backend_for(previous).discard(active.index)
        log.info("collection %s: index rebuilt as %s from stored vectors", name, config.label)
        return live

    def build_index(
        self, collection_id: int, model_id: str, dimension: int, config: IndexConfig
    ) -> VectorIndex:
        """A new index of a model's stored vectors; nothing live is locked while it builds.
        A server-side index may hold some already (an earlier, interrupted build): it is
        caught up by set difference instead."""
        index = self._new_index(collection_id, model_id, dimension, config)
        with self.db.read() as session:
            if backend_for(config).persistent:
                self._sync(session, collection_id, model_id, index, dimension)
                return index
            for ids, vectors in document_store.iter_all_vectors(
                session, collection_id, model_id, dimension
            ):
                index.add(ids, vectors)
        return index

    def switch_model(
        self,
        live: LiveCollection,
        model_id: str,
        dimension: int,
        index: VectorIndex,
        *,
        complete: Callable[[], bool],
    ) -> None:
        """Make `model_id` the collection's search model, with `index` (built from its
        vectors) caught up and swapped in atomically. `complete()` runs with the collection's
        writers held off; it embeds what is still missing and says whether every document now
        has a vector of the model (if another process wrote meanwhile, it is asked again)."""
        with live.write_lock:
            for _attempt in range(5):
                if not complete():
                    continue
                with self.db.read() as session:
                    self._sync(session, live.id, model_id, index, dimension)
                with self.db.write() as session:
                    if version_store.count_documents_without_vectors(session, live.id, model_id):
                        continue  # another process added documents in between
                    generation = version_store.activate(session, live.id, model_id)
                break
            else:
                raise ConcurrentWrite(
                    f"collection {live.name!r} kept changing while switching to {model_id}; "
                    "run the reindex again when writes are quieter"
                )
            with live.index_lock:
                retired = live.active
                live.active = ActiveVersion(model_id, dimension, index)
                live.generation, live.dirty = generation - 1, True
            if retired.index is not index:
                backend_for(live.config).discard(retired.index)
            # Writes another process made between the last sync and the switch.
            self.catch_up(live)
        self.save_snapshot(live)
        log.info("collection %s: now searching with %s", live.name, model_id)

    def drop(self, name: str) -> None:
        with self._lock:
            with self.db.write() as session:
                collection_store.delete_collection(session, name)
            live = self._live.pop(name, None)
            if live is not None:
                discard_snapshot(self._snapshot_dir(live.id))
                discard_snapshot(self._keyword_dir(live.id))
                backend_for(live.config).discard(live.index)

    def peek(self, name: str) -> LiveCollection | None:
        """The live collection as this process last saw it, without asking the store."""
        return self._live.get(name)

    def unchanged(self, live: LiveCollection) -> bool:
        """Nothing was committed anywhere since `live` was last compared with the store."""
        return self.db.data_version() == live.checked_version

    def get(self, name: str) -> LiveCollection:
        """The live collection, caught up with writes other processes made to the store."""
        live = self._live.get(name)
        if live is None:
            live = self._discover(name)
        # Nothing committed anywhere since the last look: nothing to compare (the common case
        # of a read-mostly server; saves a query per search).
        version = self.db.data_version()
        if version == live.checked_version:
            return live
        with self.db.read() as session:
            row = session.execute(
                select(
                    CollectionRow.generation,
                    CollectionRow.model_id,
                    CollectionRow.index_backend,
                    CollectionRow.index_spec,
                    CollectionRow.index_options,
                ).where(CollectionRow.id == live.id)
            ).first()
        if row is None:
            self._live.pop(name, None)
            raise CollectionNotFound(f"collection {name!r} does not exist")
        generation, model_id, backend, spec, options = row
        config = IndexConfig(backend=backend, spec=spec, options=dict(options))
        if model_id != live.model_id or config != live.config:
            # Another process switched the model or rebuilt the index: load its result.
            return self._reopen(live)
        if generation != live.generation:
            with live.write_lock:
                self.catch_up(live)
        live.checked_version = version
        return live

    def _reopen(self, live: LiveCollection) -> LiveCollection:
        with live.write_lock, self._lock:
            with self.db.read() as session:
                current = session.get(CollectionRow, live.id)
            if current is None:
                raise CollectionNotFound(f"collection {live.name!r} does not exist")
            if current.model_id == live.model_id and _config_of(current) == live.config:
                # This process made the change and has applied it meanwhile.
                return live
            fresh = self._open(current)
            self._live[live.name] = fresh
            return fresh

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
            self._catch_up_keyword(session, live, generation)
            if not self.repair_server_indexes and backend_for(live.config).persistent:
                live.generation = generation  # compared as it is, not repaired
                return
            with live.index_lock:
                added, removed = self._sync(
                    session, live.id, live.model_id, live.index, live.dimension
                )
                live.generation = generation
                if added or removed:
                    live.dirty = True
                    log.info(
                        "collection %s: index caught up with the store (+%d, -%d vectors)",
                        live.name,
                        added,
                        removed,
                    )

    @staticmethod
    def _catch_up_keyword(
        session: Session, live: LiveCollection, generation: int | None = None
    ) -> None:
        if generation is None:
            generation = collection_store.collection_generation(session, live.id)
        added, removed = live.keyword.catch_up(session, live.id)
        live.keyword.generation = generation
        if added or removed:
            log.info(
                "collection %s: keyword index caught up with the store (+%d, -%d documents)",
                live.name,
                added,
                removed,
            )

    @staticmethod
    def _sync(
        session: Session, collection_id: int, model_id: str, index: VectorIndex, dimension: int
    ) -> tuple[int, int]:
        """Make `index` hold exactly the stored vectors of `model_id`: (added, removed)."""
        stored = document_store.vector_ids(session, collection_id, model_id)
        indexed = index.ids()
        missing = np.setdiff1d(stored, indexed, assume_unique=True)
        extra = np.setdiff1d(indexed, stored, assume_unique=True)
        if len(extra):
            index.remove(extra)
        for start in range(0, len(missing), 50_000):
            ids, vectors = document_store.load_vectors(
                session, missing[start : start + 50_000], dimension
            )
            index.add(ids, vectors)
        return len(missing), len(extra)

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
        live.keyword.apply(result.written_documents, result.deleted_document_ids, result.generation)

    # -- dense retrieval ------------------------------------------------------------------
    def allowed_ids(
        self, live: LiveCollection, where: ColumnElement[bool], active: ActiveVersion | None = None
    ) -> np.ndarray:
        """The vector ids of documents matching a compiled filter (the filter stage)."""
        active = active or live.active
        with self.db.read() as session:
            return document_store.vector_ids(session, live.id, active.model_id, where)

    def search(
        self,
        live: LiveCollection,
        query: np.ndarray,
        k: int,
        params: SearchParams,
        allowed: np.ndarray | None = None,
        active: ActiveVersion | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, vector ids) for one query vector, restricted to the `allowed` ids
        (from `allowed_ids`) when given. Few allowed are searched exactly over their stored
        vectors; more go through the index with an id selector. `active`: the version the
        query vector was made for (taken once per search, so a model switch never mixes the
        two)."""
        active = active or live.active
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        if allowed is None:
            with live.index_lock:
                scores, ids = active.index.search(query, k, params)
            return _valid(scores[0], ids[0])
        with self.db.read() as session:
            return filtered_search(
                active.index,
                query[0],
                k,
                params,
                allowed,
                lambda ids: document_store.load_vectors(session, ids, active.dimension),
                exact_threshold=self.exact_filter_threshold,
                index_lock=live.index_lock,
            )


def _config_of(row: CollectionRow) -> IndexConfig:
    return IndexConfig(
        backend=row.index_backend, spec=row.index_spec, options=dict(row.index_options)
    )


def _valid(scores: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ids >= 0
    return scores[keep], ids[keep]
