"""The reference backend: sentence-transformers on torch, cpu or cuda."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tokenizers import Tokenizer

from appliance.models.registry import LocalModel


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


class TorchBackend:
    lossy_variant: str | None = None

    def __init__(self, model: LocalModel, *, device: str, threads: int | None) -> None:
        if threads is not None:
            # Process-wide in torch: the appliance is the only torch user in its process.
            torch.set_num_threads(threads if threads > 0 else (os.cpu_count() or 1))
        self.device = pick_device(device)
        self.st = SentenceTransformer(
            str(model.directory), device=self.device, local_files_only=True
        )
        dimension = self.st.get_embedding_dimension()
        if dimension is None:
            raise ValueError(f"model at {model.directory} does not report its dimension")
        self.dimension = int(dimension)
        self.max_seq_length = int(self.st.max_seq_length or 0)
        backend = getattr(self.st.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ValueError(f"model at {model.directory} has no fast tokenizer")
        self.tokenizer: Tokenizer = backend

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        vectors = self.st.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
