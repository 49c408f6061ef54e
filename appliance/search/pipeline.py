"""The query pipeline: normalise, embed (cached), retrieve with filters, format."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from appliance.collections.manager import CollectionManager
from appliance.embedding.cache import CachedEncoder
from appliance.index.base import SearchParams
from appliance.search.filters import compile_filter
from appliance.search.preprocess import normalize_query
from appliance.store import documents as document_store


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    text: str
    metadata: dict[str, Any]


@dataclass
class SearchOutcome:
    results: list[SearchHit]
    took_ms: float
    timings_ms: dict[str, float] = field(default_factory=dict)


class SearchService:
    def __init__(
        self, collections: CollectionManager, query_encoder: CachedEncoder, max_query_chars: int
    ) -> None:
        self.collections = collections
        self.query_encoder = query_encoder
        self.max_query_chars = max_query_chars

    def search(
        self,
        collection: str,
        query: str,
        *,
        limit: int = 10,
        filter: dict[str, Any] | None = None,
        params: SearchParams | None = None,
    ) -> SearchOutcome:
        started = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(stage: str, since: float) -> float:
            now = time.perf_counter()
            timings[stage] = (now - since) * 1000
            return now

        where = compile_filter(filter)
        text = normalize_query(query, self.max_query_chars)
        live = self.collections.get(collection)
        mark = lap("preprocess", started)
        vector = self.query_encoder.encode([text])[0]
        mark = lap("embed", mark)
        scores, ids = self.collections.search(
            live, vector, limit, params or live.config.default_params(), where
        )
        mark = lap("retrieve", mark)
        results = self._format(scores, ids)
        lap("format", mark)
        return SearchOutcome(
            results=results, took_ms=(time.perf_counter() - started) * 1000, timings_ms=timings
        )

    def _format(self, scores: np.ndarray, ids: np.ndarray) -> list[SearchHit]:
        with self.collections.db.read() as session:
            documents = document_store.documents_by_vector_ids(session, ids.tolist())
        return [
            SearchHit(
                id=documents[vector_id].external_id,
                score=float(score),
                text=documents[vector_id].text,
                metadata=documents[vector_id].meta,
            )
            for score, vector_id in zip(scores.tolist(), ids.tolist(), strict=True)
            # A document deleted between retrieval and formatting is simply not shown.
            if vector_id in documents
        ]
