"""Batch text encoding with a sentence-transformers model loaded from local files only."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence

os.environ["HF_HUB_OFFLINE"] = "1"  # before sentence_transformers is imported, whoever imports us

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer

from appliance.models.registry import LocalModel, check_complete


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


class Encoder:
    """Turns texts into L2-normalised float32 vectors, in batches."""

    def __init__(
        self,
        model: LocalModel,
        *,
        device: str = "auto",
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        check_complete(model.directory)
        if threads is not None:
            # Process-wide in torch: the appliance is the only torch user in its process.
            torch.set_num_threads(threads if threads > 0 else (os.cpu_count() or 1))
        self.model = model
        self.device = pick_device(device)
        self.batch_size = batch_size
        self._st = SentenceTransformer(
            str(model.directory), device=self.device, local_files_only=True
        )
        dimension = self._st.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"model at {model.directory} does not report its dimension")
        self.dimension: int = int(dimension)
        # The sequence length comes from the sentence-transformers config (256 for MiniLM).
        self.max_seq_length: int = int(self._st.max_seq_length or 0)
        backend = getattr(self._st.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(f"model at {model.directory} has no fast tokenizer")
        # A private copy: counting and chunking must see every token, never a truncated list.
        self._tokenizer = Tokenizer.from_str(backend.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.texts_encoded = 0
        self.tokens_encoded = 0
        self.compute_seconds = 0.0
        self._stats_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.model.model_id

    @property
    def fingerprint(self) -> str:
        return self.model.fingerprint

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Each text's tokens as character spans, without special tokens or truncation."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(encoding.offsets) for encoding in encodings]

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model reads for these texts: [CLS] and [SEP] included, each text cut at
        the model's sequence length as encoding cuts it."""
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        window = self.max_seq_length or 512
        return sum(min(len(encoding.ids) + 2, window) for encoding in encodings)

    @property
    def max_chunk_tokens(self) -> int:
        """Tokens that fit one window beside the model's [CLS] and [SEP]."""
        return max(8, self.max_seq_length - 2)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode texts to an (n, dimension) C-contiguous float32 array of unit vectors."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        started = time.perf_counter()
        vectors = self._st.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        elapsed = time.perf_counter() - started
        tokens = self.count_tokens(texts)
        with self._stats_lock:
            self.texts_encoded += len(texts)
            self.tokens_encoded += tokens
            self.compute_seconds += elapsed
        return np.ascontiguousarray(vectors, dtype=np.float32)
