"""The reference backend: sentence-transformers on torch, cpu or cuda."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import batch_to_device
from tokenizers import Tokenizer

from appliance.embedding.backends.prepacked import prepacked_copy
from appliance.models.registry import LocalModel

# The packed model's vectors must be the model's own (oneDNN sums in another order: ~1e-7).
PREPACKED_TOLERANCE = 1e-4


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
        self.st.eval()  # once: SentenceTransformer.encode walks every module to do it per call
        self._torch_device = torch.device(self.device)
        # What embeds: on CPU a copy with its linear weights packed once (prepacked.py), when
        # it gives this model's vectors; `st` stays as loaded (benchmarks' raw baselines).
        self.model: torch.nn.Module = self.st
        if self.device == "cpu":
            packed = prepacked_copy(self.st)
            if packed is not None and self._agrees(packed):
                self.model = packed

    def _agrees(self, packed: torch.nn.Module) -> bool:
        probe = ["a probe sentence for the packed weights", "short"]
        with torch.inference_mode():
            features = self.st.preprocess(probe)
            ours = packed(dict(features))["sentence_embedding"]
            theirs = self.st(dict(features))["sentence_embedding"]
        return bool((ours - theirs).abs().max() <= PREPACKED_TOLERANCE)

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """`SentenceTransformer.encode`'s own steps (length-sorted batches, the model's
        `preprocess`, its module pipeline, L2 normalisation): the same vectors, without the
        per-call work around them (argument checks, device resolution over every parameter,
        `eval()` over every module), about 1 ms of a lone query's 12 on one thread; on CPU
        through the prepacked copy of the model (3 ms more)."""
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), max(1, batch_size)):
                rows = order[start : start + batch_size]
                features = self.st.preprocess([texts[row] for row in rows])
                features = batch_to_device(features, self._torch_device)
                embeddings = self.model(features)["sentence_embedding"]
                embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
                vectors[rows] = embeddings.float().cpu().numpy()
        return vectors
