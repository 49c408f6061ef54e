"""Prometheus metrics. Counters the lower layers keep (cache hits, documents) are read by a
collector at scrape time, so those layers need not know Prometheus exists."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from appliance.service import Appliance

SEARCH_REQUESTS = Counter(
    "search_requests_total", "Searches answered, by collection.", ["collection"]
)
SEARCH_LATENCY = Histogram(
    "search_latency_seconds",
    "Search latency inside the appliance, by collection.",
    ["collection"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
SEARCH_STAGE = Histogram(
    "search_stage_seconds",
    "Time per search pipeline stage.",
    ["stage"],
    buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0),
)


# A metric's child per label value, looked up once: `labels()` takes a lock and builds a key
# each time (~2.5 µs; a hybrid search records eight values). Bounded: collection names come
# and go.
@lru_cache(maxsize=4_096)
def search_requests(collection: str) -> Counter:
    return SEARCH_REQUESTS.labels(collection=collection)


@lru_cache(maxsize=4_096)
def search_latency(collection: str) -> Histogram:
    return SEARCH_LATENCY.labels(collection=collection)


@lru_cache(maxsize=64)
def search_stage(stage: str) -> Histogram:
    return SEARCH_STAGE.labels(stage=stage)


DOCUMENTS_UPSERTED = Counter(
    "documents_upserted_total", "Documents written, by collection.", ["collection"]
)
SEARCH_FEEDBACK = Histogram(
    "search_feedback_relevance",
    "Relevance users gave to search results (0 = not relevant .. 3 = perfect).",
    ["collection"],
    buckets=(0, 1, 2, 3),
)
ERRORS = Counter("errors_total", "Error responses, by error type.", ["type"])


class ApplianceCollector(Collector):
    """Reads live figures from whichever appliance the running app serves."""

    def __init__(self) -> None:
        self.source: Callable[[], Appliance | None] = lambda: None

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        appliance = self.source()
        hits = CounterMetricFamily(
            "embedding_cache_hits", "Query embeddings served from the LRU cache."
        )
        misses = CounterMetricFamily(
            "embedding_cache_misses", "Query embeddings that had to be computed."
        )
        documents = GaugeMetricFamily(
            "collection_documents", "Vectors searchable per collection.", labels=["collection"]
        )
        if appliance is not None:
            hits.add_metric([], appliance.query_encoder.hits)
            misses.add_metric([], appliance.query_encoder.misses)
            for name in appliance.collections.names():
                live = appliance.collections.peek(name)
                if live is not None:
                    documents.add_metric([name], len(live.index))
        yield hits
        yield misses
        yield documents
        yield from self._result_cache(appliance)
        yield from self._query_batches(appliance)
        yield from self._embedding_and_indexes(appliance)

    @staticmethod
    def _query_batches(appliance: Appliance | None) -> Iterator[CounterMetricFamily]:
        """The micro-batcher's batches and the query texts they held: their ratio is the mean
        batch, which grows with concurrent searches (as embedding servers report theirs)."""
        batches = CounterMetricFamily(
            "query_embedding_batches", "Batches of query embeddings the micro-batcher ran."
        )
        texts = CounterMetricFamily(
            "query_embedding_batched_texts", "Query texts embedded in those batches."
        )
        batcher = appliance.query_batcher if appliance is not None else None
        if batcher is not None:
            batches.add_metric([], batcher.batches)
            texts.add_metric([], batcher.batched_texts)
        yield batches
        yield texts

    @staticmethod
    def _result_cache(appliance: Appliance | None) -> Iterator[CounterMetricFamily]:
        hits = CounterMetricFamily("result_cache_hits", "Searches answered from the result cache.")
        misses = CounterMetricFamily("result_cache_misses", "Searches the result cache missed.")
        if appliance is not None:
            hits.add_metric([], appliance.search.result_cache.hits)
            misses.add_metric([], appliance.search.result_cache.misses)
        yield hits
        yield misses

    @staticmethod
    def _embedding_and_indexes(
        appliance: Appliance | None,
    ) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        ready = GaugeMetricFamily(
            "appliance_ready", "1 once the model and every index are loaded, else 0."
        )
        tokens = CounterMetricFamily(
            "embedding_tokens", "Tokens read by the embedding model (documents and queries)."
        )
        seconds = CounterMetricFamily(
            "embedding_compute_seconds", "Seconds spent in the embedding model."
        )
        cost = CounterMetricFamily(
            "embedding_cost_equivalent_usd",
            "What the embedded tokens would have cost at a hosted embedding API.",
            labels=["reference"],
        )
        index_bytes = GaugeMetricFamily(
            "index_bytes", "Estimated memory of each collection's index.", labels=["collection"]
        )
        ready.add_metric([], 0 if appliance is None else 1)
        if appliance is not None:
            # Every loaded model counts: collections reindexed to another model, and
            # /v1/embeddings requests naming one, embed with it.
            encoders = appliance.encoders.loaded()
            tokens_encoded = sum(encoder.tokens_encoded for encoder in encoders)
            tokens.add_metric([], tokens_encoded)
            seconds.add_metric([], sum(encoder.compute_seconds for encoder in encoders))
            prices = appliance.settings.embedding_reference_prices_usd_per_million
            for reference, usd_per_million in sorted(prices.items()):
                cost.add_metric([reference], tokens_encoded * usd_per_million / 1e6)
            for name in appliance.collections.names():
                live = appliance.collections.peek(name)
                if live is not None:
                    index_bytes.add_metric([name], live.index_bytes())
        yield ready
        yield tokens
        yield seconds
        yield cost
        yield index_bytes


COLLECTOR = ApplianceCollector()
REGISTRY.register(COLLECTOR)
