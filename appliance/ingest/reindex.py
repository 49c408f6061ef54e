"""Embedding versions: re-embed a collection with another model beside the active one, build
that model's index, and switch atomically; the old version stays until dropped, so a switch
can be rolled back by switching again (only documents changed since are embedded).

Searches use the active version throughout: the new vectors are stored without bumping the
collection's generation and its index is private until the switch. Documents written while a
reindex runs are embedded by the model that is active then; the reindex finds them missing
from its version and embeds them too, the last few with the collection's writers held off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from appliance.collections.manager import CollectionManager, LiveCollection
from appliance.embedding.encoder import Encoder
from appliance.embedding.pool import EncoderPool
from appliance.errors import (
    InvalidRequest,
    ModelIntegrityError,
    ModelNotFound,
    ReindexConflict,
    VersionNotFound,
)
from appliance.index.registry import backend_for
from appliance.ingest.pipeline import IngestService
from appliance.models.model_id import ModelId
from appliance.store import documents as document_store
from appliance.store import versions as version_store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class VersionStatus:
    model_id: str
    state: str
    active: bool
    documents_total: int
    documents_embedded: int
    vectors: int
    detail: str
    created_at: datetime | None
    activated_at: datetime | None


class ReindexService:
    def __init__(
        self,
        collections: CollectionManager,
        encoders: EncoderPool,
        ingest: IngestService,
        *,
        batch_documents: int = 256,
    ) -> None:
        self.collections = collections
        self.encoders = encoders
        self.ingest = ingest
        self.batch_documents = batch_documents
        self._running: dict[str, threading.Thread | None] = {}
        # The model each running reindex switches to.
        self._targets: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- what exists ------------------------------------------------------------------------
    def versions(self, collection: str) -> list[VersionStatus]:
        live = self.collections.get(collection)

        def stored(session: Session) -> tuple[dict[str, Any], dict[str, int], int]:
            rows = {row.model_id: row for row in version_store.list_versions(session, live.id)}
            counts = version_store.stored_vector_counts(session, live.id)
            return rows, counts, document_store.count_documents(session, live.id)

        rows, counts, total = live.read(stored)
        statuses = []
        for model_id in dict.fromkeys([live.model_id, *rows, *counts]):
            row = rows.get(model_id)
            active = model_id == live.model_id
            state = "active" if active else (row.state if row else version_store.READY)
            statuses.append(
                VersionStatus(
                    model_id=model_id,
                    state=state,
                    active=active,
                    documents_total=row.documents_total if row and not active else total,
                    documents_embedded=(row.documents_embedded if row and not active else total),
                    vectors=counts.get(model_id, 0),
                    detail=row.detail if row else "",
                    created_at=row.created_at if row else None,
                    activated_at=row.activated_at if row else None,
                )
            )
        return statuses

    def version(self, collection: str, model: str) -> VersionStatus:
        for status in self.versions(collection):
            if model in (status.model_id, ModelId.parse(status.model_id).label):
                return status
        raise VersionNotFound(
            f"collection {collection!r} has no embedding version {model!r}; "
            "list them with GET /collections/{name}/versions"
        )

    def mark_interrupted(self) -> None:
        """At server start: versions a stopped process left building. Their vectors stay;
        a reindex with the same model resumes from them."""
        count = self.collections.mark_interrupted_versions()
        if count:
            log.warning("%d embedding versions were interrupted; reindex again to resume", count)

    # -- changing them ----------------------------------------------------------------------
    def start(self, collection: str, model: str) -> VersionStatus:
        """Check the request, then reindex in a background thread; follow it with
        `version(collection, model)`."""
        live, encoder = self._prepare(collection, model)
        self._claim(collection)
        with self._lock:
            self._targets[collection] = encoder.model_id
        try:
            self._record(live, encoder.model_id, version_store.BUILDING, detail="queued")
        except BaseException:
            with self._lock:
                self._running.pop(collection, None)
                self._targets.pop(collection, None)
            raise
        thread = threading.Thread(
            target=self._run_claimed,
            args=(collection, encoder, None),
            name=f"reindex-{collection}",
            daemon=True,
        )
        with self._lock:
            self._running[collection] = thread
        thread.start()
        return self.version(collection, encoder.model_id)

    def run(self, collection: str, model: str, progress: Progress | None = None) -> VersionStatus:
        """Reindex in the calling thread (the CLI); returns once the switch is made."""
        _live, encoder = self._prepare(collection, model)
        self._claim(collection)
        self._run_claimed(collection, encoder, progress, raise_errors=True)
        return self.version(collection, encoder.model_id)

    def wait(self, collection: str, timeout: float | None = None) -> None:
        with self._lock:
            thread = self._running.get(collection)
        if thread is not None:
            thread.join(timeout)

    def drop(self, collection: str, model: str) -> int:
        """Delete a version that is not active; returns the vectors deleted."""
        status = self.version(collection, model)
        if status.active:
            raise ReindexConflict(
                f"{status.model_id} is the version collection {collection!r} searches with; "
                "switch to another version first"
            )
        live = self.collections.get(collection)
        with self._lock:
            thread, target = self._running.get(collection), self._targets.get(collection)
        if thread is not None and target == live.model_id:
            # The switch is made; the reindex is only recording that it is done.
            thread.join(30)
        with self._lock:
            if collection in self._running:
                raise ReindexConflict(
                    f"a reindex of {collection!r} is running; drop versions after it ends"
                )
        return live.commit(
            lambda session: version_store.drop_version(session, live.id, status.model_id)
        )

    # -- the work ---------------------------------------------------------------------------
    def _prepare(self, collection: str, model: str) -> tuple[LiveCollection, Encoder]:
        live = self.collections.get(collection)
        try:
            encoder = self.encoders.by_name(model)
        except (ModelNotFound, ModelIntegrityError) as exc:
            raise InvalidRequest(exc.detail) from exc
        backend_for(live.config).validate(live.config, encoder.dimension)
        return live, encoder

    def _claim(self, collection: str) -> None:
        with self._lock:
            if collection in self._running:
                raise ReindexConflict(
                    f"a reindex of collection {collection!r} is already running; follow it at "
                    f"GET /collections/{collection}/versions"
                )
            self._running[collection] = None

    def _run_claimed(
        self,
        collection: str,
        encoder: Encoder,
        progress: Progress | None,
        raise_errors: bool = False,
    ) -> None:
        model_id = encoder.model_id
        live = self.collections.get(collection)
        try:
            self._reindex(collection, encoder, progress)
        except Exception as exc:
            log.exception("reindex of %s with %s failed", collection, model_id)
            self._record(live, model_id, version_store.FAILED, detail=str(exc))
            if raise_errors:
                raise
        finally:
            with self._lock:
                self._running.pop(collection, None)
                self._targets.pop(collection, None)

    def _reindex(self, collection: str, encoder: Encoder, progress: Progress | None) -> None:
        model_id = encoder.model_id
        live = self.collections.get(collection)
        if live.model_id == model_id:
            self._record(live, model_id, version_store.READY, detail="already active")
            return
        total, missing = live.read(
            lambda session: (
                document_store.count_documents(session, live.id),
                version_store.count_documents_without_vectors(session, live.id, model_id),
            )
        )
        embedded = total - missing
        self._record(
            live,
            model_id,
            version_store.BUILDING,
            total=total,
            embedded=embedded,
            detail="",
            dimension=encoder.dimension,
        )
        if progress:
            progress(embedded, total)

        def advance(done: int) -> None:
            nonlocal embedded
            embedded += done
            self._record(live, model_id, version_store.BUILDING, embedded=embedded)
            if progress:
                progress(embedded, total)

        self._embed_missing(live, encoder, advance)
        self._record(live, model_id, version_store.BUILDING, detail="building the index")
        index = self.collections.build_index(live.id, model_id, encoder.dimension, live.config)
        live = self.collections.get(collection)

        def complete() -> bool:
            # With writers held off: embed what arrived since, then confirm nothing is left.
            self._embed_missing(live, encoder, advance)
            return not live.read(
                lambda session: version_store.count_documents_without_vectors(
                    session, live.id, model_id
                )
            )

        live.switch_model(model_id, encoder.dimension, index, complete=complete)
        self._record(live, model_id, version_store.READY, total=total, detail="")

    def _embed_missing(
        self, live: LiveCollection, encoder: Encoder, advance: Callable[[int], None]
    ) -> None:
        after = 0
        while True:
            pending = live.read(
                partial(
                    version_store.documents_without_vectors,
                    collection_id=live.id,
                    model_id=encoder.model_id,
                    after_id=after,
                    limit=self.batch_documents,
                )
            )
            if not pending:
                return
            chunks = self.ingest.embed([doc.text for doc in pending], live.chunking, encoder)
            # The active version's index is untouched: these vectors are another model's.
            stored = live.commit(
                partial(
                    version_store.add_version_vectors,
                    collection_id=live.id,
                    model_id=encoder.model_id,
                    embedded=list(zip(pending, chunks, strict=True)),
                )
            )
            after = pending[-1].id
            advance(stored)

    def _record(
        self,
        live: LiveCollection,
        model_id: str,
        state: str,
        *,
        total: int | None = None,
        embedded: int | None = None,
        detail: str | None = None,
        dimension: int | None = None,
    ) -> None:
        live.commit(
            lambda session: version_store.record_version(
                session,
                live.id,
                model_id,
                state,
                total=total,
                embedded=embedded,
                detail=detail,
                dimension=dimension,
            )
        )
