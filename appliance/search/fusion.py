"""Fusing ranked candidate lists: reciprocal rank fusion, or a weighted sum of normalised
scores."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)

DEFAULT_RRF_K = 60


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[Key]],
    *,
    k: int = DEFAULT_RRF_K,
    weights: Sequence[float] | None = None,
) -> list[tuple[Key, float]]:
    """Σ weight / (k + rank) over the lists each key appears in (rank from 1), best first."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[Key, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)


def _min_max(scores: Sequence[tuple[Key, float]]) -> dict[Key, float]:
    if not scores:
        return {}
    values = [score for _, score in scores]
    low, high = min(values), max(values)
    span = high - low
    return {key: (score - low) / span if span > 0 else 1.0 for key, score in scores}


def weighted_fusion(
    dense: Sequence[tuple[Key, float]], keyword: Sequence[tuple[Key, float]], *, alpha: float
) -> list[tuple[Key, float]]:
    """alpha × dense + (1 − alpha) × keyword, each min-max normalised over its own list; a key
    missing from a list scores 0 there."""
    dense_norm, keyword_norm = _min_max(dense), _min_max(keyword)
    fused = {
        key: alpha * dense_norm.get(key, 0.0) + (1 - alpha) * keyword_norm.get(key, 0.0)
        for key in dense_norm.keys() | keyword_norm.keys()
    }
    return sorted(fused.items(), key=lambda item: item[1], reverse=True)
