"""Relevance feedback: a judgment of a served search, stored with that search's query and
ranking so that it can be evaluated later (`appliance eval --feedback`)."""

from __future__ import annotations

from appliance.collections.manager import CollectionManager
from appliance.errors import DocumentNotFound, QueryNotFound
from appliance.search.cache import RecentQueries
from appliance.store import documents as document_store
from appliance.store import feedback as feedback_store
from appliance.store.database import Database


class FeedbackService:
    def __init__(self, db: Database, collections: CollectionManager, recent: RecentQueries) -> None:
        self.db = db
        self.collections = collections
        self.recent = recent

    def record(self, collection: str, query_id: str, doc_id: str, relevance: int) -> None:
        """Store a judgment of a recent search of `collection` (by the query id it answered)."""
        served = self.recent.get(query_id)
        if served is None or served.collection != collection:
            raise QueryNotFound(
                f"query_id {query_id!r} is not a recent search of collection {collection!r}; "
                "send feedback with the query_id a search response returned"
            )
        live = self.collections.get(collection)
        with self.db.write() as session:
            if document_store.get_document(session, live.id, doc_id) is None:
                raise DocumentNotFound(f"document {doc_id!r} is not in collection {collection!r}")
            feedback_store.record_feedback(
                session,
                collection_id=live.id,
                query_id=query_id,
                query=served.query,
                served=served.results,
                doc_id=doc_id,
                relevance=relevance,
            )
