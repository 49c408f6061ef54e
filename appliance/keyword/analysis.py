"""Text analysis of the derived keyword index, matching the FTS5 table it replaces: tokens as
FTS5's `unicode61 remove_diacritics 2` cuts them (runs of letters and digits, case- and
accent-folded), each stemmed with the original Porter algorithm as FTS5's `porter` does; and
the query terms `store/keyword.py` sends FTS5 (distinct words, stop words left out)."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import Stemmer

from appliance.store.keyword import MAX_QUERY_TERMS, STOP_WORDS

# unicode61's token characters are letters and numbers: Python's \w without the underscore.
_TOKEN = re.compile(r"[^\W_]+")
# FTS5's porter passes shorter and longer tokens (in UTF-8 bytes) through unstemmed.
_PORTER_MIN_BYTES = 3
_PORTER_MAX_BYTES = 64
_CACHE_LIMIT = 1_000_000


class Analyzer:
    """Words to stems, with a cache: a corpus has far fewer distinct words than tokens."""

    def __init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("porter")
        self._stems: dict[str, str] = {}

    def words(self, text: str) -> list[str]:
        """Every token of `text`, folded but not stemmed (stop words included: FTS5 indexes
        them, and they count in a document's length)."""
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
        return _TOKEN.findall(text.lower())

    def stem(self, word: str) -> str:
        stem = self._stems.get(word)
        if stem is None:
            folded = word if word.isascii() else _fold(word)
            if not _PORTER_MIN_BYTES <= len(folded.encode("utf-8")) <= _PORTER_MAX_BYTES:
                stem = folded
            else:
                stem = self._stemmer.stemWord(folded)
            if len(self._stems) >= _CACHE_LIMIT:
                self._stems.clear()
            self._stems[word] = stem
        return stem

    def term_counts(self, text: str) -> tuple[Counter[str], int]:
        """(stem -> occurrences, number of tokens) of one field."""
        words = self.words(text)
        counts: Counter[str] = Counter()
        for word, count in Counter(words).items():
            counts[self.stem(word)] += count
        return counts, len(words)

    def query_terms(self, query: str) -> list[str]:
        """The stems FTS5 is asked for: one per distinct query word (as `store/keyword.py`
        quotes them), stop words left out unless nothing else is left. Two words with one stem
        count twice, as two FTS5 phrases do."""
        words = list(dict.fromkeys(re.findall(r"\w+", query.lower())))
        words = [word for word in words if word not in STOP_WORDS] or words
        terms: list[str] = []
        for word in words[:MAX_QUERY_TERMS]:
            # A word FTS5 would split ("covid_19") becomes one term per token.
            terms.extend(self.stem(token) for token in self.words(word))
        return terms


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(char for char in decomposed if not unicodedata.combining(char))
