"""Caches of the query path: search results (TTL + size bound) and the recent queries that
feedback refers to.

A result is keyed by the collection's generation, which every write bumps, so a search after
a write can never be answered from a result computed before it.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from cachetools import LRUCache, TTLCache

Value = TypeVar("Value")


class ResultCache(Generic[Value]):
    def __init__(self, maxsize: int, ttl_seconds: float) -> None:
        self._cache: TTLCache[Hashable, Value] | None = (
            TTLCache(maxsize=maxsize, ttl=ttl_seconds) if maxsize > 0 and ttl_seconds > 0 else None
        )
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, *, count_miss: bool = True) -> Value | None:
        """The cached value, or None. A caller that goes on to compute the value and ask again
        (a peek before the real lookup) passes `count_miss=False`, so one search counts one
        miss."""
        if self._cache is None:
            return None
        with self._lock:
            value = self._cache.get(key)
            if value is None:
                if count_miss:
                    self.misses += 1
            else:
                self.hits += 1
            return value

    def put(self, key: Hashable, value: Value) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache[key] = value


def result_key(collection: str, generation: int, query: str, options: Any) -> Hashable:
    """Every parameter that can change a result, canonically serialised (msgspec encodes the
    options dataclass, its structs and filter dicts with keys sorted; json.dumps of asdict
    cost 5x that on every search)."""
    return (
        collection,
        generation,
        query,
        msgspec.json.encode(options, order="sorted", enc_hook=repr),
    )


@dataclass(frozen=True)
class ServedQuery:
    """What a search answered, kept so that feedback on it can be judged later."""

    collection: str
    query: str
    results: tuple[str, ...]


class RecentQueries:
    """The last `maxsize` searches by query id (in memory; feedback stores what it needs)."""

    def __init__(self, maxsize: int) -> None:
        self._served: LRUCache[str, ServedQuery] = LRUCache(maxsize=max(1, maxsize))
        self._lock = threading.Lock()

    def remember(self, query_id: str, served: ServedQuery) -> None:
        with self._lock:
            self._served[query_id] = served

    def get(self, query_id: str) -> ServedQuery | None:
        with self._lock:
            return self._served.get(query_id)
