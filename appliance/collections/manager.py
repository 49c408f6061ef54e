"""The catalogue of live collections: opens, creates, reconfigures and drops them, and hands
out the live collection object that owns each one's reads and writes (collection.py).

The store is the source of truth. An index is loaded from its snapshot and caught up with the
store by a set difference of vector ids (vectors are immutable and ids never reused), or rebuilt
from the stored vectors; nothing is ever re-embedded here. An index on a server (Milvus) keeps
its own state: it is opened as the server holds it and caught up the same way, without a
snapshot. Writes made by this process are applied by the collection as it commits them; writes
made by another process (the CLI beside a server) are noticed through the collection's
generation counter and caught up before the next search.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import ColumnElement, select

from appliance.collections.collection import (
    ActiveVersion,
    CollectionPlace,
    CollectionStatus,
    LiveCollection,
    StoredDocument,
    sync_index,
)
from appliance.collections.settings import (
    CONTENT_FIELDS,
    SEARCH_FIELDS,
    SearchDefaults,
    index_part,
    split_options,
)
from appliance.errors import CollectionNotFound
from appliance.index.base import (
    IndexConfig,
    IndexPlace,
    IndexServer,
    SearchParams,
    VectorIndex,
    check_query_params,
)
from appliance.index.registry import backend_for
from appliance.index.snapshots import (
    SnapshotInfo,
    check_snapshot,
    discard_snapshot,
    load_snapshot,
)
from appliance.keyword.index import KeywordIndex
from appliance.nowait import refuse_to_wait
from appliance.store import collections as collection_store
from appliance.store import documents as document_store
from appliance.store import versions as version_store
from appliance.store.database import Database
from appliance.store.documents import WriteResult
from appliance.store.schema import CollectionRow

log = logging.getLogger(__name__)
# Options a move onto another index keeps: how the stored vectors were made (content) and
# how the collection is searched (search defaults); neither is the index's.
_KEPT_OPTIONS = CONTENT_FIELDS + SEARCH_FIELDS
__all__ = [
    "ActiveVersion",
    "CollectionManager",
    "CollectionStatus",
    "LiveCollection",
    "StoredDocument",
]


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
        # Collections opened from a snapshot checked by sampled blocks only, for
        # `check_snapshots` to check whole once the server is ready.
        self._sampled: list[LiveCollection] = []

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

    def _collection_place(self, row_id: int) -> CollectionPlace:
        return CollectionPlace(
            db=self.db,
            snapshot_dir=self._snapshot_dir(row_id),
            keyword_dir=self._keyword_dir(row_id),
            exact_filter_threshold=self.exact_filter_threshold,
            repair_server_indexes=self.repair_server_indexes,
            # Looked up at each write, so that a test may stand in for it.
            apply=lambda live, result: self.apply(live, result),
        )

    def _place(self, collection_id: int, model_id: str) -> IndexPlace | None:
        if self.index_server is None:
            return None
        return IndexPlace(self.index_server, collection_id, model_id)

    def _new_index(
        self, collection_id: int, model_id: str, dimension: int, config: IndexConfig
    ) -> VectorIndex:
        """An empty local index, or a server-side one as its server holds it."""
        config = index_part(config)
        return backend_for(config).create(config, dimension, self._place(collection_id, model_id))

    def _open(self, row: CollectionRow) -> LiveCollection:
        config = _config_of(row)
        dimension = self.dimension_of(row.model_id)
        loaded = None
        if not backend_for(config).persistent:
            loaded = load_snapshot(
                self._snapshot_dir(row.id), index_part(config), dimension, row.model_id
            )
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
            place=self._collection_place(row.id),
            keyword=KeywordIndex.load(self._keyword_dir(row.id)) or KeywordIndex(),
        )
        if loaded is not None:
            self._sampled.append(live)
        if loaded is None or not self._snapshot_current(live, loaded[1]):
            self.catch_up(live)
        if live.keyword.generation != live.generation:
            with self.db.read() as session:
                live.catch_up_keyword(session)
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

    def check_snapshots(self) -> list[str]:
        """Check every byte (xxh3) of the snapshots the open indexes were loaded from, which
        start-up checked by sampled blocks only; an index whose snapshot fails is rebuilt from
        the store and swapped in. Run by a server once it is ready. The names of the rebuilt
        collections."""
        rebuilt = []
        while self._sampled:
            live = self._sampled.pop(0)
            directory = self._snapshot_dir(live.id)
            if check_snapshot(directory, "xxh3") is None:
                continue
            with live.write_lock:
                # Again with writers held off: a snapshot saved meanwhile replaced the files.
                problem = check_snapshot(directory, "xxh3")
                if problem is None or self._live.get(live.name) is not live:
                    continue
                log.error(
                    "collection %s: its index snapshot %s (loaded at start-up): rebuilding the "
                    "index from the store",
                    live.name,
                    problem,
                )
                discard_snapshot(directory)
                index = self._new_index(live.id, live.model_id, live.dimension, live.config)
                live.replace_index(live.config, index)
                live.save_snapshot()
            rebuilt.append(live.name)
        return rebuilt

    def save_snapshots(self) -> None:
        for live in list(self._live.values()):
            live.save_snapshot()

    def save_snapshot(self, live: LiveCollection) -> None:
        live.save_snapshot()

    def mark_interrupted_versions(self) -> int:
        """At server start: embedding versions a stopped process left building, marked so."""
        with self.db.write() as session:
            return version_store.mark_interrupted(session)

    # -- catalogue ------------------------------------------------------------------------
    def names(self) -> list[str]:
        """The collections this process has open."""
        return sorted(self._live)

    def stored_names(self) -> list[str]:
        """Every collection in the store, open here or not."""
        with self.db.read() as session:
            return [row.name for row in collection_store.list_collections(session)]

    def status(self, live: LiveCollection) -> CollectionStatus:
        return live.status()

    def document(self, name: str, doc_id: str) -> StoredDocument:
        """One stored document by its id; DocumentNotFound names both."""
        return self.get(name).document(doc_id)

    def create(self, name: str, config: IndexConfig, model_id: str) -> LiveCollection:
        """A new collection; `config.options` may hold its content settings and search
        defaults beside the index's own options (see collections/settings.py)."""
        dimension = self.dimension_of(model_id)
        check_config(config, dimension)
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
                place=self._collection_place(row.id),
                dirty=True,
            )
            self._live[name] = live
            return live

    def change_search_defaults(self, name: str, changes: SearchDefaults) -> LiveCollection:
        """Set the search defaults `changes` gives; the others stay."""
        live = self.get(name)
        live.change_search_defaults(changes)
        return live

    def reconfigure(self, name: str, config: IndexConfig) -> LiveCollection:
        """Switch a collection to another index configuration, built from the stored vectors
        (never re-embedded). Content settings (the stored vectors were made with them) and
        search defaults stay.
        The build runs while searches and writes go on against the current index; the new
        one is caught up with the writes made meanwhile, then swapped in."""
        live = self.get(name)
        check_config(config, live.dimension)
        kept = {k: v for k, v in live.config.options.items() if k in _KEPT_OPTIONS}
        config = IndexConfig(
            backend=config.backend, spec=config.spec, options={**config.options, **kept}
        )
        if config == live.config:
            return live
        active = live.active
        index = self.build_index(live.id, active.model_id, active.dimension, config)
        live.replace_index(config, index)
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
                sync_index(session, collection_id, model_id, index, dimension)
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
        """See `LiveCollection.switch_model`."""
        live.switch_model(model_id, dimension, index, complete=complete)

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
            refuse_to_wait(f"collection {name!r} is not open here yet")
            live = self._discover(name)
        # Nothing committed anywhere since the last look: nothing to compare (the common case
        # of a read-mostly server; saves a query per search).
        version = self.db.data_version()
        if version == live.checked_version:
            return live
        refuse_to_wait("the store changed since this collection was compared with it")
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
        if model_id == live.model_id and config != live.config and _same_index(config, live):
            # Another process changed the search defaults: nothing to rebuild.
            with live.write_lock:
                live.config = config
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
        """Bring the indexes to the store's state by id set difference. Idempotent."""
        live.catch_up()

    def search(
        self,
        live: LiveCollection,
        query: np.ndarray,
        k: int,
        params: SearchParams,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One dense search in a read transaction of its own (tools and tests; the search
        pipeline reads through `live.reader()`)."""
        with live.reader() as snapshot:
            return snapshot.dense.search(query, k, params, allowed)

    def allowed_ids(self, live: LiveCollection, where: ColumnElement[bool]) -> np.ndarray:
        """The vector ids of documents matching a compiled filter (tools and tests)."""
        with live.reader() as snapshot:
            return snapshot.dense.allowed(where)

    def apply(self, live: LiveCollection, result: WriteResult) -> None:
        """Apply a write committed outside `live.commit` (tools and tests that write to the
        store themselves). Call with live.write_lock held."""
        live.apply(result)


def check_config(config: IndexConfig, dimension: int) -> None:
    """Refuse, saying what to fix, an index the backend cannot build, settings out of bounds,
    or query defaults (ef, nprobe) the index would not read."""
    backend = backend_for(config)
    backend.validate(config, dimension)
    split_options(config.options)[1].content.check()
    check_query_params(config, backend.traits(config), config.default_params())


def _same_index(config: IndexConfig, live: LiveCollection) -> bool:
    ours = live.config
    return (config.backend, config.spec, split_options(config.options)[0]) == (
        ours.backend,
        ours.spec,
        split_options(ours.options)[0],
    )


def _config_of(row: CollectionRow) -> IndexConfig:
    return IndexConfig(
        backend=row.index_backend, spec=row.index_spec, options=dict(row.index_options)
    )
