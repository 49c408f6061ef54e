"""The readers a search goes through: dense, keyword and documents, of one shape, sharing one
read transaction of the store (one session, one snapshot) and one version of the collection.

Made by `LiveCollection.reader()`; a search opens one and reads everything through it, so
retrieval, rescoring, reranking and formatting all see the same state of the store, and the
documents fetched for reranking are not fetched again to format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from appliance.collections.chunk_cache import ChunkCache
from appliance.collections.document_cache import DocumentCache
from appliance.collections.rwlock import ReadWriteLock
from appliance.index.base import SearchParams
from appliance.index.filtered import filtered_search
from appliance.keyword.index import KeywordIndex
from appliance.store import collections as collection_store
from appliance.store import documents as document_store
from appliance.store.documents import ChunkHit, ExistingDocument, StoredText

if TYPE_CHECKING:
    from appliance.collections.collection import ActiveVersion


class Reader:
    """What every reader is made of: the search's read transaction and its version."""

    def __init__(self, session: Session, collection_id: int, active: ActiveVersion) -> None:
        self._session = session
        self.collection_id = collection_id
        self.active = active


class DenseReader(Reader):
    """Nearest neighbours from the vector index; chunk and exact-vector lookups from the store."""

    def __init__(
        self,
        session: Session,
        collection_id: int,
        active: ActiveVersion,
        *,
        index_lock: ReadWriteLock,
        exact_filter_threshold: int,
        chunk_cache: ChunkCache | None = None,
    ) -> None:
        super().__init__(session, collection_id, active)
        self._lock = index_lock
        self._exact_filter_threshold = exact_filter_threshold
        self._chunk_cache = chunk_cache

    def __len__(self) -> int:
        return len(self.active.index)

    def allowed(self, where: ColumnElement[bool]) -> np.ndarray:
        """The vector ids of documents matching a compiled filter (the filter stage)."""
        return document_store.vector_ids(
            self._session, self.collection_id, self.active.model_id, where
        )

    def search(
        self, query: np.ndarray, k: int, params: SearchParams, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, vector ids) for one query vector, restricted to the `allowed` ids
        when given: few are searched exactly over their stored vectors, more through the
        index with an id selector. Searches share the index; writes wait for them."""
        index = self.active.index
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        with self._lock.read():
            if allowed is None:
                scores, ids = index.search(query, k, params)
                keep = ids[0] >= 0
                return scores[0][keep], ids[0][keep]
            return filtered_search(
                index,
                query[0],
                k,
                params,
                allowed,
                self.vectors,
                exact_threshold=self._exact_filter_threshold,
            )

    def vectors(self, ids: np.ndarray | list[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, exact stored vectors) of the given vector ids."""
        return document_store.load_vectors(self._session, ids, self.active.dimension)

    def rescore(self, query: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidates of a lossy index scored again with their exact vectors, best first."""
        exact_ids, exact = self.vectors(ids.tolist())
        scores = exact @ query
        order = np.argsort(-scores, kind="stable")
        return scores[order], exact_ids[order]

    def chunks(self, vector_ids: list[int]) -> dict[int, ChunkHit]:
        """The document and span of each vector id."""
        if self._chunk_cache is None:
            return document_store.chunks_by_vector_ids(self._session, vector_ids)
        return self._chunk_cache.lookup(vector_ids, self._load_chunks)

    def _load_chunks(self, vector_ids: list[int]) -> dict[int, ChunkHit]:
        return document_store.chunks_by_vector_ids(self._session, vector_ids)


class KeywordReader(Reader):
    """BM25 from the collection's keyword index."""

    def __init__(
        self, session: Session, collection_id: int, active: ActiveVersion, keyword: KeywordIndex
    ) -> None:
        super().__init__(session, collection_id, active)
        self._keyword = keyword

    def allowed(self, where: ColumnElement[bool]) -> np.ndarray:
        """The document ids matching a compiled filter."""
        return document_store.document_ids(self._session, self.collection_id, where)

    def search(
        self, text: str, k: int, *, title_weight: float, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        return self._keyword.search(text, k, title_weight=title_weight, allowed=allowed)


class DocumentReader(Reader):
    """Stored documents by id; each is fetched once per snapshot, from the collection's
    document cache when it holds them all for the snapshot's generation."""

    def __init__(
        self,
        session: Session,
        collection_id: int,
        active: ActiveVersion,
        *,
        generation: int = -1,
        cache: DocumentCache | None = None,
    ) -> None:
        super().__init__(session, collection_id, active)
        self._fetched: dict[int, StoredText] = {}
        self._missing: set[int] = set()
        self._generation = generation
        self._cache = cache

    def get(self, document_ids: list[int]) -> dict[int, StoredText]:
        """The documents of these ids that exist in the snapshot."""
        wanted = [i for i in document_ids if i not in self._fetched and i not in self._missing]
        if wanted:
            cached = None if self._cache is None else self._cache.lookup(self._generation, wanted)
            if cached is not None:
                self._fetched.update(cached)
            else:
                self._read(wanted)
        return {i: self._fetched[i] for i in document_ids if i in self._fetched}

    def _read(self, wanted: list[int]) -> None:
        found = document_store.documents_by_ids(self._session, wanted)
        self._fetched.update(found)
        self._missing.update(i for i in wanted if i not in found)
        # Remembered only if this transaction saw the collection at the snapshot's generation
        # (not a write committed since, whose index update is still under way).
        if self._cache is not None and found:
            stored = collection_store.collection_generation(self._session, self.collection_id)
            if stored == self._generation:
                self._cache.remember(self._generation, found)

    def existing(self, model_id: str, external_ids: list[str]) -> dict[str, ExistingDocument]:
        """Hash and vector state of the documents with these external ids (dedup on write)."""
        return document_store.existing_documents(
            self._session, self.collection_id, model_id, external_ids
        )


class ReadSnapshot:
    """The readers of one search, over one read transaction."""

    def __init__(
        self,
        session: Session,
        *,
        collection_id: int,
        active: ActiveVersion,
        keyword: KeywordIndex,
        index_lock: ReadWriteLock,
        exact_filter_threshold: int,
        chunk_cache: ChunkCache | None = None,
        generation: int = -1,
        document_cache: DocumentCache | None = None,
    ) -> None:
        self.active = active
        self.dense = DenseReader(
            session,
            collection_id,
            active,
            index_lock=index_lock,
            exact_filter_threshold=exact_filter_threshold,
            chunk_cache=chunk_cache,
        )
        self.keyword = KeywordReader(session, collection_id, active, keyword)
        self.documents = DocumentReader(
            session, collection_id, active, generation=generation, cache=document_cache
        )
