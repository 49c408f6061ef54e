"""The appliance: every layer wired together once, for the API and the CLI to share."""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path

from appliance.collections.manager import CollectionManager
from appliance.config import Settings
from appliance.embedding.cache import CachedEncoder
from appliance.embedding.encoder import Encoder
from appliance.errors import CollectionNotFound, DocumentNotFound, QueryNotFound
from appliance.index.base import IndexConfig
from appliance.index.registry import DEFAULT_INDEX
from appliance.ingest.jobs import JobRunner
from appliance.ingest.pipeline import IngestService
from appliance.ingest.sources import read_jsonl
from appliance.models.registry import LocalModel, ModelRegistry
from appliance.search.cache import ResultCache
from appliance.search.pipeline import SearchService
from appliance.search.rerank import Reranker
from appliance.store import documents as document_store
from appliance.store import feedback as feedback_store
from appliance.store.database import Database

log = logging.getLogger(__name__)

SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "data" / "sample" / "python-stdlib.jsonl"


class Appliance:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry | None = None,
        encoder: Encoder | None = None,
    ) -> None:
        """`encoder` lets several appliances (tests, tools) share one loaded model."""
        self.settings = settings
        self.registry = registry or ModelRegistry()
        if encoder is None:
            model = self.resolve_model(settings, self.registry)
            encoder = Encoder(
                model,
                device=settings.device,
                batch_size=settings.embed_batch_size,
                threads=settings.torch_threads,
                backend=settings.backend_for(model.name),
                export_dir=settings.model_export_dir,
            )
        self.encoder = encoder
        self.query_encoder = CachedEncoder(self.encoder, settings.embedding_cache_size)
        self.db = Database(settings.database_path)
        self.collections = CollectionManager(
            self.db,
            settings.index_dir,
            dimension=self.encoder.dimension,
            exact_filter_threshold=settings.exact_filter_threshold,
        )
        self.collections.open_all()
        self._reranker: Reranker | None = None
        self._reranker_lock = threading.Lock()
        self.search = SearchService(
            self.collections,
            self.query_encoder,
            settings.max_query_chars,
            self.reranker,
            result_cache=ResultCache(settings.result_cache_size, settings.result_cache_ttl_seconds),
        )
        self.ingest = IngestService(
            self.collections,
            self.encoder,
            max_batch_documents=settings.max_batch_documents,
            max_text_chars=settings.max_text_chars,
        )
        # Started only where something serves: the API's loader, not one-shot CLI commands.
        self.jobs = JobRunner(self.db, self.ingest)

    @staticmethod
    def resolve_model(settings: Settings, registry: ModelRegistry | None = None) -> LocalModel:
        return (registry or ModelRegistry()).resolve(settings.model, verify=settings.verify_model)

    def reranker(self) -> Reranker | None:
        """The configured cross-encoder, loaded on first use; None when none is configured."""
        if not self.settings.rerank_model:
            return None
        with self._reranker_lock:
            if self._reranker is None:
                model = self.registry.resolve(
                    self.settings.rerank_model,
                    verify=self.settings.verify_model,
                    kind="cross-encoder",
                )
                self._reranker = Reranker(model, device=self.settings.device)
            return self._reranker

    def record_feedback(self, collection: str, query_id: str, doc_id: str, relevance: int) -> None:
        """Store a judgment of a served search, with that search's query and ranking."""
        served = self.search.recent.get(query_id)
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

    def create_collection(self, name: str, config: IndexConfig | None = None) -> None:
        self.collections.create(name, config or DEFAULT_INDEX, self.encoder.model_id)

    def ensure_collection(self, name: str) -> None:
        try:
            self.collections.get(name)
        except CollectionNotFound:
            self.create_collection(name)

    def load_sample_if_empty(self, corpus: Path = SAMPLE_CORPUS, batch: int = 256) -> int:
        """First start: fill the default collection with the bundled sample corpus."""
        name = self.settings.default_collection
        self.ensure_collection(name)
        if len(self.collections.get(name).index) > 0 or not corpus.is_file():
            return 0
        log.info("empty store: ingesting the sample corpus %s into %r", corpus, name)
        loaded = 0
        documents = read_jsonl(corpus)
        while chunk := list(itertools.islice(documents, batch)):
            loaded += self.ingest.upsert(name, chunk).upserted
        self.collections.save_snapshots()
        log.info("sample corpus ingested: %d documents", loaded)
        return loaded

    def close(self) -> None:
        self.jobs.stop()
        self.collections.save_snapshots()
        self.db.close()
