"""Which document and span each vector id is, remembered between searches.

A vector never changes once stored (a changed text gets new vector ids; ids are never reused),
so what the store said about a vector id stays true as long as the vector exists. A hybrid
search looks up its 100-200 dense candidates: from the store that was a third of its Python
time. A deleted vector may still be remembered here: its document is then simply not found
when the answer is formatted, as with a keyword hit read between a delete's commit and its
index update.

A plain dict, not an LRU: a lookup is a dict read (an LRU's bookkeeping in Python cost as much
as the query it saves); past `maxsize` the oldest half is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from appliance.store.documents import ChunkHit

ChunkLoader = Callable[[list[int]], dict[int, ChunkHit]]


class ChunkCache:
    def __init__(self, maxsize: int = 200_000) -> None:
        self.maxsize = max(2, maxsize)
        self._chunks: dict[int, ChunkHit] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._chunks)

    def lookup(self, vector_ids: list[int], load: ChunkLoader) -> dict[int, ChunkHit]:
        """The chunk of each vector id; those not remembered are read with `load` (ids it
        does not find are not in the store, and are not remembered)."""
        chunks = self._chunks
        found = {}
        missing = []
        for vector_id in vector_ids:
            hit = chunks.get(vector_id)
            if hit is None:
                missing.append(vector_id)
            else:
                found[vector_id] = hit
        if missing:
            loaded = load(missing)
            found.update(loaded)
            with self._lock:
                if len(chunks) + len(loaded) > self.maxsize:
                    for vector_id in list(chunks)[: len(chunks) // 2]:
                        del chunks[vector_id]
                chunks.update(loaded)
        return found
