"""Query normalisation: the same text always becomes the same query (and the same cache key).

1. Unicode NFKC (full-width letters, ligatures and compatibility forms fold to plain ones).
2. Control characters removed; runs of whitespace folded to one space; ends trimmed.
3. Capped at a maximum length, at a word boundary where one is near.
"""

from __future__ import annotations

import re
import unicodedata

from appliance.errors import InvalidRequest

_WHITESPACE = re.compile(r"\s+")


def normalize_query(text: str, max_chars: int) -> str:
    text = unicodedata.normalize("NFKC", text)
    if not text.isprintable():  # printable: no character of category C, nothing to drop
        text = "".join(ch for ch in text if ch.isspace() or unicodedata.category(ch)[0] != "C")
    text = _WHITESPACE.sub(" ", text).strip()
    if not text:
        raise InvalidRequest("query is empty after normalisation; send some words to search for")
    if len(text) > max_chars:
        cut = text.rfind(" ", 0, max_chars)
        text = text[: cut if cut > max_chars * 0.8 else max_chars]
    return text
