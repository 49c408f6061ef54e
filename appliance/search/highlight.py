"""Snippets: per hit, the passage with the most query terms and where they match in it.

Terms are matched as keyword search matches them (`keyword/analysis.py`: case and accent
folded, Porter-stemmed), so "running" marks "runs". The passage is a window of the hit's
chunk (its whole text when it has no chunk) around the densest run of matches, cut at word
boundaries; spans are [start, end) offsets into the passage text.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from appliance.keyword.analysis import Analyzer

PASSAGE_CHARS = 240
# unicode61's token characters, as keyword/analysis.py cuts them.
_TOKEN = re.compile(r"[^\W_]+")
_local = threading.local()


@dataclass(frozen=True)
class Highlight:
    text: str
    spans: list[tuple[int, int]]
    # Where `text` starts in the document's text.
    start: int


def _analyzer() -> Analyzer:
    # One per thread: the stemmer is a C object with state of its own.
    analyzer = getattr(_local, "analyzer", None)
    if analyzer is None:
        analyzer = _local.analyzer = Analyzer()
    return analyzer


def highlight(
    text: str,
    query: str,
    region: tuple[int, int] | None = None,
    passage_chars: int = PASSAGE_CHARS,
) -> Highlight:
    """The best passage of `text[region]` (all of `text` without one) for `query`."""
    analyzer = _analyzer()
    terms = set(analyzer.query_terms(query))
    low, high = region if region is not None else (0, len(text))
    low, high = max(0, min(low, len(text))), max(0, min(high, len(text)))
    matches = [
        (found.start(), found.end(), stem)
        for found in _TOKEN.finditer(text, low, high)
        if (stem := analyzer.stem(found.group().lower())) in terms
    ]
    if not matches:
        start, end = _trimmed(text, low, _word_end(text, min(high, low + passage_chars), low))
        return Highlight(text=text[start:end], spans=[], start=start)
    first, last = _densest(matches, passage_chars)
    covered_start, covered_end = matches[first][0], matches[last][1]
    # Centre the run in the passage, then widen it to word boundaries within the region.
    slack = max(0, passage_chars - (covered_end - covered_start))
    start = max(low, covered_start - slack // 2)
    end = min(high, max(covered_end, start + passage_chars))
    start = max(low, min(start, end - passage_chars))
    start = _word_start(text, start, low, covered_start)
    end = _word_end(text, end, covered_end)
    start, end = _trimmed(text, start, end)
    spans = [(s - start, e - start) for s, e, _ in matches if s >= start and e <= end]
    return Highlight(text=text[start:end], spans=spans, start=start)


def _densest(matches: list[tuple[int, int, str]], width: int) -> tuple[int, int]:
    """(first, last) indexes of the run of matches fitting in `width` characters with the
    most distinct terms, then the most matches, then the earliest."""
    best = (0, 0)
    best_score = (-1, -1)
    last = 0
    for first in range(len(matches)):
        last = max(last, first)
        while last + 1 < len(matches) and matches[last + 1][1] - matches[first][0] <= width:
            last += 1
        run = matches[first : last + 1]
        score = (len({stem for _, _, stem in run}), len(run))
        if score > best_score:
            best, best_score = (first, last), score
    return best


def _word_start(text: str, start: int, low: int, limit: int) -> int:
    """Move `start` forward past a partly cut word (never beyond `limit`)."""
    if start <= low or not _is_word(text[start - 1]) or not _is_word(text[start]):
        return start
    moved = start
    while moved < limit and _is_word(text[moved]):
        moved += 1
    return moved


def _word_end(text: str, end: int, limit: int) -> int:
    """Move `end` back before a partly cut word (never before `limit`)."""
    if end >= len(text) or not _is_word(text[end]) or not _is_word(text[end - 1]):
        return end
    moved = end
    while moved > limit and _is_word(text[moved - 1]):
        moved -= 1
    return moved


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without white space at either end."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _is_word(char: str) -> bool:
    return char.isalnum()


class _Hit(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def chunk(self) -> Any: ...


HitT = TypeVar("HitT", bound=_Hit)


def with_highlights(hits: Sequence[HitT], query: str) -> list[HitT]:
    """The hits, each with its `highlight`: the best passage of its matching chunk."""
    return [
        replace(  # type: ignore[type-var]  # a dataclass with a highlight field
            hit,
            highlight=highlight(
                hit.text, query, (hit.chunk.start, hit.chunk.end) if hit.chunk else None
            ),
        )
        for hit in hits
    ]
