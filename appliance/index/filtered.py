"""Filtered dense search: exact over the matching vectors when few match, otherwise the index
with an id selector (the backends look proportionally wider, by 1 / selectivity).

One function, shared by `DenseReader.search` and `appliance bench`, so that the figures
the bench reports are those of the code that answers queries.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from appliance.index.base import IndexConfig, SearchParams, VectorIndex
from appliance.index.registry import backend_for

# (sorted allowed ids) -> (ids, vectors) for those ids, in the order of the ids returned.
VectorLoader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def is_exact_index(config: IndexConfig) -> bool:
    """An exact index (flat) already answers a selector search exactly, without loading
    vectors."""
    return backend_for(config).traits(config).exact


# Above this share of the index, the selector search is cheaper than loading the matching
# vectors from SQLite (~5-15 us each on 2 cores), and it needs to widen ef by at most 50x, which
# stays under the backends' ef cap (4096 for ef=128 at 3 %), so recall holds. Measured on 100k
# vectors (384 dims): at 1 % the exact path wins (15-25 ms vs 31 ms faiss HNSW, 220 ms hnswlib);
# at 10 % the index wins (15 ms faiss, 57 ms hnswlib vs 150-280 ms loading 10k vectors).
EXACT_MAX_SELECTIVITY = 0.02


def uses_exact_path(
    config: IndexConfig,
    allowed_count: int,
    index_count: int,
    exact_threshold: int,
    max_selectivity: float = EXACT_MAX_SELECTIVITY,
) -> bool:
    """Exact when few match: at most `exact_threshold` ids and at most `max_selectivity` of the
    index (a flat index is exact with its selector, so never)."""
    if is_exact_index(config) or allowed_count > exact_threshold:
        return False
    return allowed_count <= max_selectivity * index_count


def exact_top_k(
    query: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) of one query over the given vectors, by inner product."""
    scores = vectors @ query
    if len(scores) > k:
        top = np.argpartition(-scores, k - 1)[:k]
    else:
        top = np.arange(len(scores))
    order = top[np.argsort(-scores[top], kind="stable")]
    return scores[order].astype(np.float32), ids[order]


def filtered_search(
    index: VectorIndex,
    query: np.ndarray,
    k: int,
    params: SearchParams,
    allowed: np.ndarray,
    load_vectors: VectorLoader,
    *,
    exact_threshold: int,
    max_exact_selectivity: float = EXACT_MAX_SELECTIVITY,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) of one query vector among the `allowed` ids.

    Few allowed ids (see `uses_exact_path`): brute force over their stored vectors (recall 1,
    and cheaper than a graph walk that must skip almost every node). More: the index with an id
    selector, widened by the backend. The caller keeps writers out of the index meanwhile.
    """
    query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
    if len(allowed) == 0:
        return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
    index_count = len(index)
    exact = uses_exact_path(
        index.config, len(allowed), index_count, exact_threshold, max_exact_selectivity
    )
    if exact:
        ids, vectors = load_vectors(allowed)
        return exact_top_k(query, ids, vectors, k)
    scores, ids = index.search(query.reshape(1, -1), k, params, allowed=allowed)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]
