"""What both HTTP search suites measure the appliance against, and the queries they send."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance


def fresh_queries(
    documents: list[DocumentInput], prefix: str = ""
) -> Callable[[], tuple[tuple[str], dict]]:
    """pytest-benchmark `setup`: a new query text every round (a `prefix` per role keeps the
    roles apart), so the embedding cache always misses."""
    counter = itertools.count()
    words = [doc.id.replace(".", " ").replace("_", " ") for doc in documents]

    def next_query() -> tuple[tuple[str], dict]:
        n = next(counter)
        return (" ".join(part for part in (words[n % len(words)], prefix, str(n)) if part),), {}

    return next_query


def raw_search(
    appliance: Appliance, empty: Any, *, own_embedding: bool = False
) -> Callable[[str], None]:
    """The baseline round: raw `SentenceTransformer.encode` + raw hnswlib search on the
    appliance's own index (ef 128, as it searches) + a POST to an empty Litestar route.

    `own_embedding`: the appliance's encoder instead of raw sentence-transformers (on torch
    its traced graph), so that the pair measures only what serving adds around the same
    embedding: HTTP, the search's bookkeeping, the thread hops."""
    live = appliance.collections.get(appliance.settings.default_collection)
    raw_index = live.index._index  # type: ignore[attr-defined]
    raw_index.set_ef(128)
    st = appliance.encoder._st
    encoder = appliance.encoder

    def embed(query: str) -> np.ndarray:
        if own_embedding:
            return encoder.encode([query], batch_size=appliance.settings.query_pass_size)
        return np.asarray(
            st.encode([query], normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )

    def run(query: str) -> None:
        raw_index.knn_query(embed(query), k=10, num_threads=1)
        assert empty.post("/empty", json={"query": query, "limit": 10}).status_code == 200

    return run
