"""One live collection: its index kept equal to the store, its writes (commit, then apply)
and its reads (readers over one read transaction) behind one object.

Writers of a collection take turns on `write_lock` (SQLite would serialise them anyway) and
hold it from their commit until the index has the change. The index itself sits behind a
readers-writer lock: searches share it, a write applies alone and only for as long as the
index changes (never while embedding or committing).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy.orm import Session

from appliance.collections.chunk_cache import ChunkCache
from appliance.collections.document_cache import DocumentCache
from appliance.collections.readers import ReadSnapshot
from appliance.collections.rwlock import ReadWriteLock
from appliance.collections.settings import (
    CollectionSettings,
    SearchDefaults,
    joined_options,
    split_options,
)
from appliance.embedding.chunking import ChunkingConfig
from appliance.errors import DocumentNotFound
from appliance.index.base import IndexConfig, IndexTraits, VectorIndex
from appliance.index.registry import backend_for
from appliance.index.snapshots import save_snapshot
from appliance.keyword.index import KeywordIndex
from appliance.store import collections as collection_store
from appliance.store import documents as document_store
from appliance.store import versions as version_store
from appliance.store.database import Database
from appliance.store.documents import ConcurrentWrite, WriteResult

log = logging.getLogger(__name__)
R = TypeVar("R")


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
    # "cpu" or "cuda:N" for a local index; None for one in a server (Milvus).
    search_device: str | None


@dataclass(frozen=True)
class StoredDocument:
    id: str
    text: str
    metadata: dict[str, Any]
    content_hash: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CollectionPlace:
    """What a live collection needs from the catalogue that opened it."""

    db: Database
    snapshot_dir: Path
    keyword_dir: Path
    exact_filter_threshold: int
    # False: a server-side index is compared as the server holds it, never repaired (verify).
    repair_server_indexes: bool = True
    # How a committed write reaches the indexes: the catalogue's `apply` (one seam where a
    # crash between commit and apply can be simulated), else the collection's own.
    apply: Callable[[LiveCollection, WriteResult], None] | None = None


@dataclass(eq=False)
class LiveCollection:
    id: int
    name: str
    config: IndexConfig
    active: ActiveVersion
    generation: int
    place: CollectionPlace
    # Writers take turns from their commit until the index has the change (re-entrant: a
    # switch holds writers off while it commits what is still missing).
    write_lock: threading.RLock = field(default_factory=threading.RLock)
    # The index: searches on the read side side by side, changes on the write side.
    lock: ReadWriteLock = field(default_factory=ReadWriteLock)
    dirty: bool = False
    # The store's data_version when this collection was last compared with it.
    checked_version: int = -1
    # BM25 over the collection's documents, derived from the store like the vector index.
    keyword: KeywordIndex = field(default_factory=KeywordIndex)
    # The document and span of vector ids searches have looked up (vectors never change).
    chunk_cache: ChunkCache = field(default_factory=ChunkCache)
    # The stored documents searches have shown, for the current generation.
    document_cache: DocumentCache = field(default_factory=DocumentCache)
    _settings: tuple[IndexConfig, CollectionSettings] | None = field(default=None, repr=False)

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
    def settings(self) -> CollectionSettings:
        """The content settings and search defaults, typed (read from the stored options)."""
        cached = self._settings
        if cached is None or cached[0] is not self.config:
            cached = self._settings = (self.config, split_options(self.config.options)[1])
        return cached[1]

    @property
    def traits(self) -> IndexTraits:
        return backend_for(self.config).traits(self.config)

    @property
    def chunking(self) -> ChunkingConfig:
        return self.settings.content.chunking_config()

    @property
    def serves_remotely(self) -> bool:
        """Whether the index lives in a server (Milvus): each search is a network call."""
        return backend_for(self.config).persistent

    @property
    def db(self) -> Database:
        return self.place.db

    # -- reads ----------------------------------------------------------------------------
    @contextmanager
    def reader(self) -> Iterator[ReadSnapshot]:
        """Readers (dense, keyword, documents) over one read transaction: every read of a
        search sees one snapshot of the store, and the version taken here (a model switch
        meanwhile cannot mix two models)."""
        with self.db.read() as session:
            yield ReadSnapshot(
                session,
                collection_id=self.id,
                active=self.active,
                keyword=self.keyword,
                index_lock=self.lock,
                exact_filter_threshold=self.place.exact_filter_threshold,
                chunk_cache=self.chunk_cache,
                generation=self.generation,
                document_cache=self.document_cache,
            )

    def read(self, query: Callable[[Session], R]) -> R:
        """Run `query` in one read transaction of the store."""
        with self.db.read() as session:
            return query(session)

    def status(self) -> CollectionStatus:
        with self.db.read() as session:
            documents = document_store.count_documents(session, self.id)
            generation = collection_store.collection_generation(session, self.id)
        with self.lock.read():
            return CollectionStatus(
                documents=documents,
                generation=generation,
                vectors_indexed=len(self.index),
                index_bytes=self.index.nbytes(),
                search_device=self.search_device(),
            )

    def search_device(self) -> str | None:
        """Where the index answers unfiltered searches: "cpu", "cuda:N" (a FAISS index's GPU
        copy), or None when a server searches it."""
        if self.serves_remotely:
            return None
        return str(getattr(self.index, "search_device", "cpu"))

    def indexed(self) -> tuple[np.ndarray, int]:
        """(every id in the index, its live count), read together."""
        with self.lock.read():
            return self.index.ids(), len(self.index)

    def index_bytes(self) -> int:
        with self.lock.read():
            return self.index.nbytes()

    def document(self, doc_id: str) -> StoredDocument:
        """One stored document by its id; DocumentNotFound names both."""
        with self.db.read() as session:
            row = document_store.get_document(session, self.id, doc_id)
            if row is None:
                raise DocumentNotFound(f"document {doc_id!r} is not in collection {self.name!r}")
            return StoredDocument(
                id=row.external_id,
                text=row.text,
                metadata=row.meta,
                content_hash=row.content_hash,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )

    # -- writes ---------------------------------------------------------------------------
    def commit(self, write: Callable[[Session], R], *, model_id: str | None = None) -> R:
        """Run `write` in one store transaction, commit it, then apply it to the indexes; the
        one way anything changes a collection. What `write` returns is handed back; a
        WriteResult in it (itself, or an item of a tuple) is applied. `model_id`: the model
        the caller embedded with; ConcurrentWrite if the collection switched meanwhile."""
        with self.write_lock:
            if model_id is not None and self.model_id != model_id:
                raise ConcurrentWrite("the collection switched models while embedding")
            with self.db.write() as session:
                outcome = write(session)
            items = outcome if isinstance(outcome, tuple) else (outcome,)
            apply = self.place.apply or LiveCollection.apply
            for item in items:
                if isinstance(item, WriteResult):
                    apply(self, item)
            return outcome

    def apply(self, result: WriteResult) -> None:
        """Apply a committed write to the indexes. Call with write_lock held (`commit` does)."""
        if result.generation == 0:
            return
        if result.generation != self.generation + 1:
            # Another process wrote in between: the set difference covers both writes.
            self.catch_up()
            return
        with self.lock.write():
            if result.removed_ids:
                self.index.remove(np.asarray(result.removed_ids, dtype=np.int64))
            if result.added_ids and result.added_vectors is not None:
                self.index.add(np.asarray(result.added_ids, dtype=np.int64), result.added_vectors)
            self.generation = result.generation
            self.dirty = True
        self.keyword.apply(result.written_documents, result.deleted_document_ids, result.generation)

    def catch_up(self) -> None:
        """Bring the indexes to the store's state by id set difference. Idempotent."""
        with self.db.read() as session:
            generation = collection_store.collection_generation(session, self.id)
            self.catch_up_keyword(session, generation)
            if not self.place.repair_server_indexes and backend_for(self.config).persistent:
                self.generation = generation  # compared as it is, not repaired
                return
            with self.lock.write():
                added, removed = sync_index(
                    session, self.id, self.model_id, self.index, self.dimension
                )
                self.generation = generation
                if added or removed:
                    self.dirty = True
                    log.info(
                        "collection %s: index caught up with the store (+%d, -%d vectors)",
                        self.name,
                        added,
                        removed,
                    )

    def catch_up_keyword(self, session: Session, generation: int | None = None) -> None:
        if generation is None:
            generation = collection_store.collection_generation(session, self.id)
        added, removed = self.keyword.catch_up(session, self.id)
        self.keyword.generation = generation
        if added or removed:
            log.info(
                "collection %s: keyword index caught up with the store (+%d, -%d documents)",
                self.name,
                added,
                removed,
            )

    def change_search_defaults(self, changes: SearchDefaults) -> CollectionSettings:
        """Set the search defaults `changes` gives (the others stay). The generation moves on,
        so no cached answer made under the old defaults is served."""
        with self.write_lock:
            index_options, current = split_options(self.config.options)
            settings = CollectionSettings(
                content=current.content, search=current.search.merged(changes)
            )
            config = IndexConfig(
                backend=self.config.backend,
                spec=self.config.spec,
                options=joined_options(index_options, settings),
            )
            if config == self.config:
                return settings
            with self.db.write() as session:
                row = collection_store.get_collection(session, self.name)
                row.index_options = dict(config.options)
                generation = document_store.bump_generation(session, self.id)
            self.config = config
            self.apply(WriteResult(generation=generation))
            return settings

    def replace_index(self, config: IndexConfig, index: VectorIndex) -> None:
        """Swap in `index` (built from the stored vectors of the active model while the current
        one served) under `config`, caught up with the writes made meanwhile."""
        active = self.active
        with self.write_lock:
            with self.db.read() as session:
                sync_index(session, self.id, active.model_id, index, active.dimension)
            with self.db.write() as session:
                row = collection_store.get_collection(session, self.name)
                row.index_backend, row.index_spec = config.backend, config.spec
                row.index_options = dict(config.options)
            with self.lock.write():
                previous = self.config
                self.config, self.dirty = config, True
                self.active = ActiveVersion(active.model_id, active.dimension, index)
            backend_for(previous).discard(active.index)

    def switch_model(
        self, model_id: str, dimension: int, index: VectorIndex, *, complete: Callable[[], bool]
    ) -> None:
        """Make `model_id` the search model, with `index` (built from its vectors) caught up
        and swapped in atomically. `complete()` runs with writers held off; it embeds what is
        still missing and says whether every document now has a vector of the model (if
        another process wrote meanwhile, it is asked again)."""
        with self.write_lock:
            for _attempt in range(5):
                if not complete():
                    continue
                with self.db.read() as session:
                    sync_index(session, self.id, model_id, index, dimension)
                with self.db.write() as session:
                    if version_store.count_documents_without_vectors(session, self.id, model_id):
                        continue  # another process added documents in between
                    generation = version_store.activate(session, self.id, model_id)
                break
            else:
                raise ConcurrentWrite(
                    f"collection {self.name!r} kept changing while switching to {model_id}; "
                    "run the reindex again when writes are quieter"
                )
            with self.lock.write():
                retired = self.active
                self.active = ActiveVersion(model_id, dimension, index)
                self.generation, self.dirty = generation - 1, True
            if retired.index is not index:
                backend_for(self.config).discard(retired.index)
            # Writes another process made between the last sync and the switch.
            self.catch_up()
        self.save_snapshot()
        log.info("collection %s: now searching with %s", self.name, model_id)

    def save_snapshot(self) -> None:
        """Write the index and keyword snapshots if they changed; searches go on meanwhile."""
        with self.write_lock, self.lock.read():
            if self.keyword.saved_generation != self.keyword.generation:
                self.keyword.save(self.place.keyword_dir)
            if not self.dirty:
                return
            if backend_for(self.config).persistent:
                self.dirty = False  # the server keeps the index itself
                return
            ids = self.index.ids()
            max_id = int(ids.max()) if len(ids) else 0
            save_snapshot(
                self.index,
                self.place.snapshot_dir,
                model_id=self.model_id,
                max_id=max_id,
                generation=self.generation,
            )
            self.dirty = False


def sync_index(
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
