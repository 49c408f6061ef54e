"""An in-memory LRU cache of embeddings keyed by (model fingerprint, text)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from cachetools import LRUCache

if TYPE_CHECKING:
    from appliance.embedding.batcher import MicroBatcher


class TextEncoder(Protocol):
    @property
    def fingerprint(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class CachedEncoder:
    """Wraps an encoder; cached texts are not re-encoded. Misses are encoded in one batch.

    One cache serves every model: keys carry the model fingerprint, so `encode(texts, other)`
    caches another model's vectors beside the default's without ever mixing them."""

    def __init__(
        self, encoder: TextEncoder, maxsize: int, batcher: MicroBatcher | None = None
    ) -> None:
        self.encoder = encoder
        # Misses of concurrent callers are encoded together (embedding/batcher.py).
        self.batcher = batcher
        self._cache: LRUCache[tuple[str, str], np.ndarray] = LRUCache(maxsize=max(1, maxsize))
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    def encode(self, texts: Sequence[str], encoder: TextEncoder | None = None) -> np.ndarray:
        encoder = encoder or self.encoder
        fingerprint = encoder.fingerprint
        out = np.empty((len(texts), encoder.dimension), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for row, text in enumerate(texts):
                cached = self._cache.get((fingerprint, text))
                if cached is None:
                    missing.setdefault(text, []).append(row)
                else:
                    out[row] = cached
            self.hits += len(texts) - sum(len(rows) for rows in missing.values())
            self.misses += len(missing)
        if missing:
            unique = list(missing)
            if self.batcher is not None:
                vectors = self.batcher.encode(unique, encoder)
            else:
                vectors = encoder.encode(unique)
            with self._lock:
                for text, vector in zip(unique, vectors, strict=True):
                    # Copy so the cache never pins the whole batch array.
                    self._cache[(fingerprint, text)] = vector.copy()
                    out[missing[text]] = vector
        return out
