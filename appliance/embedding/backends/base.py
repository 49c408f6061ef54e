"""What every embedding backend offers the `Encoder`: vectors for a batch, and its shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer


class EmbeddingBackend(Protocol):
    """Turns texts into unit float32 vectors exactly as the model's sentence-transformers
    config says (its pooling, its normalisation, its sequence length)."""

    dimension: int
    max_seq_length: int
    # The model's fast tokenizer: the Encoder counts tokens and cuts chunks with a copy of it.
    tokenizer: Tokenizer
    # None when the vectors are the source model's (cosine >= 0.9999 against torch); a short
    # tag ("int8") when they are a lossy variant that must never share an index or a cache
    # with the source model's vectors.
    lossy_variant: str | None

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray: ...

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        """Wait for work the backend does in the background after loading (OpenVINO's
        fixed-length graphs); it embeds meanwhile, more slowly."""
        ...
