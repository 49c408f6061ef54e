"""An in-memory LRU cache of embeddings keyed by (model fingerprint, text)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
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

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray: ...


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
        out, missing = self._lookup(texts, encoder)
        if missing:
            texts_missing = list(missing)
            vectors = (
                self.batcher.encode(texts_missing, encoder)
                if self.batcher is not None
                else encoder.encode(texts_missing)  # no batcher: this thread encodes them
            )
            self._store(encoder, out, missing, vectors)
        return out

    def submit(
        self, texts: Sequence[str], encoder: TextEncoder | None = None
    ) -> Future[np.ndarray] | None:
        """Like `encode`, without waiting: the future holds the vectors once the batcher has
        encoded the misses (at once when every text is cached). None without a batcher:
        there the caller's thread must encode (`encode`)."""
        if self.batcher is None:
            return None
        encoder = encoder or self.encoder
        out, missing = self._lookup(texts, encoder)
        done: Future[np.ndarray] = Future()
        if not missing:
            done.set_result(out)
            return done
        pending = self.batcher.submit(list(missing), encoder)

        def finish(batch: Future[np.ndarray], encoder: TextEncoder = encoder) -> None:
            try:
                self._store(encoder, out, missing, batch.result())
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(out)

        pending.add_done_callback(finish)
        return done

    def _lookup(
        self, texts: Sequence[str], encoder: TextEncoder
    ) -> tuple[np.ndarray, dict[str, list[int]]]:
        """The output array with cached rows filled, and the rows of each missing text."""
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
        return out, missing

    def _store(
        self,
        encoder: TextEncoder,
        out: np.ndarray,
        missing: dict[str, list[int]],
        vectors: np.ndarray,
    ) -> None:
        fingerprint = encoder.fingerprint
        with self._lock:
            for text, vector in zip(missing, vectors, strict=True):
                # Copy so the cache never pins the whole batch array.
                self._cache[(fingerprint, text)] = vector.copy()
                out[missing[text]] = vector
