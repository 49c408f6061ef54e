"""Stored documents by id, for one generation of a collection, remembered between searches.

A search shows its page's documents: read from the store, that is a read transaction of its
own (BEGIN, SELECT, ROLLBACK through SQLAlchemy: ~200 µs, a fifth of a hybrid search's
Python, and three calls that let go of the GIL on an event loop). Popular documents answer
many queries, so they are remembered here.

Every write to a collection moves its generation on, so documents remembered for one
generation are exactly those of that generation, and a new generation starts empty. Only a
read that saw the collection at the generation it is remembered under fills it: the caller
checks the stored generation in the read transaction that loaded the documents (a write
committed but not yet applied would otherwise slip in under the older number). A search takes
its whole page from here or none of it, so one page never mixes two versions of the store.
"""

from __future__ import annotations

import threading

from appliance.store.documents import StoredText

# What the remembered texts of one collection may add up to, in characters (UTF-8 text is
# 1-4 bytes a character in memory; each entry's id, metadata and object cost ~ENTRY_CHARS).
DEFAULT_BUDGET_CHARS = 16_000_000
ENTRY_CHARS = 256


class DocumentCache:
    def __init__(self, budget_chars: int = DEFAULT_BUDGET_CHARS) -> None:
        self.budget_chars = budget_chars
        # (generation, its documents), replaced whole: a reader takes both in one read.
        self._state: tuple[int, dict[int, StoredText]] = (-1, {})
        self._chars = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._state[1])

    def lookup(self, generation: int, document_ids: list[int]) -> dict[int, StoredText] | None:
        """Every one of these documents as of `generation`, or None if any is not remembered
        for it (then read them all from the store)."""
        remembered_generation, documents = self._state
        if generation != remembered_generation:
            return None
        found = {}
        for document_id in document_ids:
            document = documents.get(document_id)
            if document is None:
                return None
            found[document_id] = document
        return found

    def remember(self, generation: int, documents: dict[int, StoredText]) -> None:
        """Documents read in a transaction that saw the collection at `generation`."""
        with self._lock:
            remembered_generation, remembered = self._state
            if generation < remembered_generation:
                return  # a slow reader of an older generation: keep the newer one
            if generation > remembered_generation:
                remembered, self._chars = {}, 0
            for document_id, document in documents.items():
                size = _size(document)
                if size > self.budget_chars // 8:
                    continue  # one huge document does not push out a page's worth of others
                if document_id not in remembered:
                    self._chars += size
                remembered[document_id] = document
            if self._chars > self.budget_chars:
                # The oldest half goes (a plain dict in insertion order: a lookup stays one
                # dict read per document).
                remembered = dict(list(remembered.items())[len(remembered) // 2 :])
                self._chars = sum(_size(document) for document in remembered.values())
            self._state = (generation, remembered)


def _size(document: StoredText) -> int:
    return len(document.text) + len(document.external_id) + ENTRY_CHARS
