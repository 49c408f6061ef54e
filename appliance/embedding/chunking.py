"""Token-aware chunking: split long texts into overlapping windows of the model's own tokens.

Each chunk is a character span of the original text, so a hit can point at the passage that
matched. A text that fits in one window stays one chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_OVERLAP = 32


@dataclass(frozen=True)
class ChunkingConfig:
    enabled: bool = True
    # Tokens per chunk, without the model's special tokens; None = the model's max length.
    max_tokens: int | None = None
    overlap: int = DEFAULT_OVERLAP


def chunk_spans(
    text_length: int, offsets: Sequence[tuple[int, int]], max_tokens: int, overlap: int
) -> list[tuple[int, int]]:
    """Character spans of windows of `max_tokens` tokens, each overlapping the previous one by
    `overlap` tokens. `offsets` are the tokens' character spans in the text."""
    if len(offsets) <= max_tokens:
        return [(0, text_length)]
    step = max(1, max_tokens - overlap)
    spans = []
    for first in range(0, len(offsets), step):
        last = min(first + max_tokens, len(offsets)) - 1
        # The first chunk keeps any leading text; the last one runs to the end of the text.
        start = 0 if first == 0 else offsets[first][0]
        end = text_length if last == len(offsets) - 1 else offsets[last][1]
        spans.append((start, end))
        if last == len(offsets) - 1:
            break
    return spans
