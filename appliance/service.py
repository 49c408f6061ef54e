"""The appliance: every layer wired together once, for the API and the CLI to share."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.collections.manager import CollectionManager
from appliance.collections.settings import ContentSettings, SearchDefaults
from appliance.config import Settings
from appliance.embedding.backends import query_batch_workers_for
from appliance.embedding.batcher import MicroBatcher
from appliance.embedding.cache import CachedEncoder
from appliance.embedding.encoder import Encoder
from appliance.embedding.openai_compat import EmbeddingLimits, EmbeddingsService
from appliance.embedding.pool import EncoderPool
from appliance.errors import CollectionNotFound, ModelIntegrityError
from appliance.index import faiss_index
from appliance.index.base import IndexConfig, IndexTraits
from appliance.index.hnswlib_index import DEFAULT_EF
from appliance.index.registry import DEFAULT_INDEX, backend_for
from appliance.ingest.jobs import JobRunner
from appliance.ingest.pipeline import IngestService
from appliance.ingest.reindex import ReindexService
from appliance.ingest.sample import SAMPLE_CORPUS, load_sample_corpus
from appliance.models.model_id import ModelId
from appliance.models.registry import LocalModel, ModelRegistry
from appliance.search.cache import ResultCache
from appliance.search.feedback import FeedbackService
from appliance.search.pipeline import SearchOptions, SearchService
from appliance.search.rerank import Reranker
from appliance.search.warming import QueryLog, WarmReport, options_from, warm
from appliance.store import versions as version_store
from appliance.store.database import Database

log = logging.getLogger(__name__)

# Package data (pyproject.toml), so an installed wheel has it too; data/build_sample_corpus.py
# rebuilds it.


def index_config(
    backend: str = "hnswlib",
    spec: str | None = None,
    *,
    ef_construction: int | None = None,
    ef: int | None = None,
    nprobe: int | None = None,
) -> IndexConfig:
    """A collection's index from the options `POST /collections` and `appliance collections
    create` take; what is left out gets the backend's default (a graph index is searched with
    ef 128, wide enough for exact-level recall)."""
    chosen = backend_for(IndexConfig(backend=backend, spec=""))
    options: dict[str, Any] = {
        key: value
        for key, value in (("ef_construction", ef_construction), ("ef", ef), ("nprobe", nprobe))
        if value is not None
    }
    config = IndexConfig(backend=backend, spec=spec or chosen.default_spec, options=options)
    if spec is None and ef is None and "ef" in chosen.traits(config).query_params:
        config = IndexConfig(
            backend=backend, spec=config.spec, options={**options, "ef": DEFAULT_EF}
        )
    return config


@dataclass(frozen=True)
class CollectionSummary:
    """A collection as `GET /collections/{name}` and `appliance collections show` tell it."""

    name: str
    index: dict[str, Any]
    model_id: str
    documents: int
    vectors_indexed: int
    index_bytes: int
    generation: int
    content: ContentSettings
    search: SearchDefaults
    # What the index is, as its backend declares: exact, lossy, the query parameters it takes.
    traits: IndexTraits
    # Where the index answers unfiltered searches: "cpu", "cuda:0" (a FAISS GPU copy), or
    # None for an index in a server (Milvus).
    search_device: str | None


class Appliance:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry | None = None,
        encoder: Encoder | None = None,
        *,
        open_collections: bool = True,
    ) -> None:
        """`encoder` lets several appliances (tests, tools) share one loaded model.
        `open_collections=False` loads each collection's index on first use instead of all at
        start-up: a command about one collection then never loads, catches up or re-saves
        another's (a server's writes since its last snapshot make every other index stale)."""
        self.settings = settings
        self.registry = registry or self.registry_for(settings)
        # FAISS indexes search on a GPU only where the device setting allows (process-wide).
        faiss_index.use_device(settings.device)
        loading: Future[Encoder] = Future()
        if encoder is None:
            model = self.resolve_model(settings, self.registry)
            # The model loads while the indexes load: ready after the longer of the two, not
            # their sum (torch's import and the snapshot checksums overlap).
            loader = ThreadPoolExecutor(1, thread_name_prefix="model-loader")
            loading = loader.submit(self.load_encoder, model)
            loader.shutdown(wait=False)
        else:
            model = encoder.model
            loading.set_result(encoder)
        self._default_model = model
        self._loading = loading
        # Every embedding model a collection uses: the default one, others on first use.
        self.encoders = EncoderPool(self.registry, self.load_encoder, verify=settings.verify_model)
        self.db = Database(settings.database_location)
        self.collections = CollectionManager(
            self.db,
            settings.index_dir,
            dimension_of=self.dimension_of,
            exact_filter_threshold=settings.exact_filter_threshold,
            index_server=settings.index_server(),
        )
        try:
            if open_collections:
                self.collections.open_all()
        finally:
            encoder = loading.result()
        self.encoder = encoder
        if model.record and model.record.dimension not in (None, encoder.dimension):
            raise ModelIntegrityError(
                f"model {model.name!r} is registered with dimension {model.record.dimension} "
                f"but makes {encoder.dimension}-dimensional vectors: fix models/registry.json"
            )
        self.encoders.add(encoder)
        workers = settings.query_batch_workers
        if workers is None:
            workers = query_batch_workers_for(encoder.settled_backend_name)
        self.query_batcher = (
            MicroBatcher(
                workers=workers,
                max_batch=settings.query_batch_max,
                pass_size=settings.query_pass_size,
            )
            if workers > 0
            else None
        )
        self.query_encoder = CachedEncoder(
            self.encoder, settings.embedding_cache_size, self.query_batcher
        )
        # OpenAI-compatible embeddings: the same encoders and cache as searches and writes.
        self.embeddings = EmbeddingsService(
            self.encoder,
            self.encoders,
            self.query_encoder,
            EmbeddingLimits(settings.embeddings_max_inputs, settings.embeddings_max_input_tokens),
        )
        self.query_log = QueryLog(self.db)
        self._reranker: Reranker | None = None
        self._reranker_lock = threading.Lock()
        self.search = SearchService(
            self.collections,
            self.query_encoder,
            self.encoders,
            settings.max_query_chars,
            self.reranker,
            result_cache=ResultCache(settings.result_cache_size, settings.result_cache_ttl_seconds),
            query_log=self.query_log.note,
            max_in_flight=settings.max_pending_queries,
            threads=settings.search_threads,
            inline=(
                self.db.dialect == "sqlite"
                if settings.search_on_event_loop is None
                else settings.search_on_event_loop
            ),
        )
        self.feedback = FeedbackService(self.db, self.collections, self.search.recent)
        self.ingest = IngestService(
            self.collections,
            self.encoders,
            max_batch_documents=settings.max_batch_documents,
            max_text_chars=settings.max_text_chars,
        )
        self.reindex = ReindexService(self.collections, self.encoders, self.ingest)
        # Started only where something serves: the API's loader, not one-shot CLI commands.
        self.jobs = JobRunner(self.db, self.ingest)
        # The start-up task `start` is running, for /ready to tell; None when none is.
        self.starting: str | None = None

    def load_encoder(self, model: LocalModel, backend: str | None = None) -> Encoder:
        """`backend`: None = the configured one for this model (a lossy variant's vectors
        name the backend that made them, and must be read with it)."""
        return Encoder(
            model,
            device=self.settings.device,
            batch_size=self.settings.embed_batch_size,
            threads=self.settings.torch_threads,
            runtime_threads=self.settings.runtime_threads,
            fixed_lengths=self.settings.openvino_fixed_lengths,
            backend=backend or self.settings.backend_for(model.name),
            export_dir=self.settings.model_export_dir,
        )

    def dimension_of(self, model_id: str) -> int:
        """A model's vector dimension without waiting for a model to load where the registry
        or the stored vectors tell it (the default model may still be loading)."""
        name = ModelId.parse(model_id).name
        if name == self._default_model.name:
            record = self._default_model.record
            if record and record.dimension:
                return record.dimension  # checked against the loaded model in __init__
            return self._loading.result().dimension
        with self.db.read() as session:
            stored = version_store.model_dimension(session, model_id)
        return stored if stored is not None else self.encoders.get(model_id).dimension

    @staticmethod
    def resolve_model(settings: Settings, registry: ModelRegistry | None = None) -> LocalModel:
        return (registry or Appliance.registry_for(settings)).resolve(
            settings.model, verify=settings.verify_model
        )

    @staticmethod
    def registry_for(settings: Settings) -> ModelRegistry:
        path = settings.registry_path
        return ModelRegistry(path) if path else ModelRegistry()

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
        """Store a judgment of a served search (see `search/feedback.py`)."""
        self.feedback.record(collection, query_id, doc_id, relevance)

    def warm(self, collection: str, queries: Sequence[str], options: SearchOptions) -> WarmReport:
        """Search each query once so its answer is cached."""
        return warm(self.search, ((collection, query, options) for query in queries))

    def warm_from_log(self) -> WarmReport:
        """Replay the most frequent recent searches (start-up warming)."""
        top = self.settings.warm_top_queries
        if top <= 0:
            return WarmReport()
        self.query_log.flush()
        frequent = self.query_log.frequent(top, self.settings.warm_within_days)
        report = warm(
            self.search, ((q.collection, q.query, options_from(q.params)) for q in frequent)
        )
        log.info(
            "cache warmed with %d frequent searches in %.1f s (%d failed)",
            report.warmed,
            report.seconds,
            len(report.failed),
        )
        return report

    def create_collection(self, name: str, config: IndexConfig | None = None) -> None:
        self.collections.create(name, config or DEFAULT_INDEX, self.encoder.model_id)

    def describe_collection(self, name: str) -> CollectionSummary:
        """The collection's index, model and counts (CollectionNotFound if there is none)."""
        live = self.collections.get(name)
        status = self.collections.status(live)
        return CollectionSummary(
            name=live.name,
            index={"backend": live.config.backend, "spec": live.config.spec, **live.config.options},
            model_id=live.model_id,
            documents=status.documents,
            vectors_indexed=status.vectors_indexed,
            index_bytes=status.index_bytes,
            generation=status.generation,
            content=live.settings.content,
            search=live.settings.search,
            traits=live.traits,
            search_device=status.search_device,
        )

    def list_collections(self) -> list[CollectionSummary]:
        """Every stored collection, those another process created included."""
        return [self.describe_collection(name) for name in self.collections.stored_names()]

    def delete_collection(self, name: str) -> None:
        """Drop the collection, its documents, vectors and index (CollectionNotFound first)."""
        self.collections.get(name)
        self.collections.drop(name)

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
        loaded = load_sample_corpus(self.ingest, name, corpus, batch)
        self.collections.save_snapshots()
        return loaded

    def start(self) -> None:
        """What a serving process runs once the model and indexes are loaded, in this order:
        resume unfinished jobs, mark reindexes a stopped process left as interrupted, start
        the query log, fill an empty store with the sample corpus (if configured), warm the
        result cache from the log, then check every byte of the index snapshots loaded at
        start-up (rebuilding any that fails). `close` stops them in the reverse order. One-shot
        CLI commands never call it. A failed sample load or warming is logged, not fatal."""
        self.ensure_collection(self.settings.default_collection)
        self.jobs.start()
        self.reindex.mark_interrupted()
        self.query_log.start()
        if self.settings.load_sample:
            self.starting = (
                f"loading the sample corpus into {self.settings.default_collection!r} "
                "(searches are answered meanwhile, over what is loaded so far)"
            )
            try:
                self.load_sample_if_empty()
            except Exception:
                log.exception("sample corpus ingestion failed")
        self.starting = "warming the result cache from the query log"
        try:
            self.warm_from_log()
        except Exception:
            log.exception("start-up cache warming failed")
        self.starting = None
        # Start-up checked the index snapshots by sampled blocks; every byte is checked now,
        # with the server answering.
        try:
            self.collections.check_snapshots()
        except Exception:
            log.exception("the background check of the index snapshots failed")

    def close(self) -> None:
        self.jobs.stop()
        self.query_log.stop()
        self.search.close()
        if self.query_batcher is not None:
            self.query_batcher.close()
        self.collections.save_snapshots()
        self.db.close()
