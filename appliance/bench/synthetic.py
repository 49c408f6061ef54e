"""Synthetic benchmark data: clustered unit vectors (so ANN behaves as on embeddings, not as on
uniform noise) and a `rank` metadata field that lets a filter match an exact number of rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SyntheticData:
    # Vector ids 1..n, as the store hands them out.
    ids: np.ndarray
    vectors: np.ndarray
    queries: np.ndarray
    # rank[i] is document i's place in a random permutation: the filter
    # {"rank": {"$gte": a, "$lt": a + m}} matches exactly m documents.
    rank: np.ndarray

    def metadata(self, row: int) -> dict[str, int]:
        return {"rank": int(self.rank[row])}


def _unit(rows: np.ndarray) -> np.ndarray:
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return np.ascontiguousarray(rows, dtype=np.float32)


def _clustered(
    rng: np.random.Generator, centroids: np.ndarray, weights: np.ndarray, count: int, spread: float
) -> np.ndarray:
    dim = centroids.shape[1]
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 20_000):
        stop = min(count, start + 20_000)
        members = rng.choice(len(centroids), size=stop - start, p=weights)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32)
        # Noise of norm ~spread around a unit centroid: cos(point, centroid) ~ 1/sqrt(1+spread^2).
        out[start:stop] = centroids[members] + noise * (spread / np.sqrt(dim))
    return _unit(out)


def make_synthetic(
    n: int, dim: int, n_queries: int, *, seed: int = 0, spread: float = 1.0
) -> SyntheticData:
    """`n` documents and `n_queries` held-out queries drawn from the same clusters."""
    rng = np.random.default_rng(seed)
    n_clusters = max(8, int(np.sqrt(n)))
    centroids = _unit(rng.standard_normal((n_clusters, dim), dtype=np.float32))
    # Uneven cluster sizes, as topics in a real corpus.
    weights = rng.pareto(1.5, n_clusters) + 1.0
    weights /= weights.sum()
    vectors = _clustered(rng, centroids, weights, n, spread)
    queries = _clustered(rng, centroids, weights, n_queries, spread)
    return SyntheticData(
        ids=np.arange(1, n + 1, dtype=np.int64),
        vectors=vectors,
        queries=queries,
        rank=rng.permutation(n).astype(np.int64),
    )


def rank_windows(
    rank: np.ndarray, ids: np.ndarray, count: int, n_windows: int, seed: int = 0
) -> list[np.ndarray]:
    """Allowed-id sets of exactly `count` ids each (sorted): the documents whose rank falls in
    a random window [a, a + count), one window per query."""
    rng = np.random.default_rng(seed)
    by_rank = ids[np.argsort(rank)]
    starts = rng.integers(0, len(ids) - count + 1, size=n_windows)
    return [np.sort(by_rank[start : start + count]) for start in starts]
