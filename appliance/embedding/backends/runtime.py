"""The part every exported backend shares: tokenize, batch by length, run the graph, mean-pool
and normalise in float32, exactly as sentence-transformers does."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from appliance.embedding.backends.layout import ModelLayout

# (input_ids, attention_mask, token_type_ids), int64 (batch, seq) → (batch, seq, hidden).
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average of the token vectors the attention mask keeps (sentence-transformers' mean)."""
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden.astype(np.float32, copy=False) * weights).sum(axis=1)
    return summed / np.clip(weights.sum(axis=1), 1e-9, None)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


class RuntimeBackend:
    """Base of the onnxruntime and OpenVINO backends; a subclass supplies `forward`."""

    lossy_variant: str | None = None

    def __init__(self, layout: ModelLayout, forward: Forward) -> None:
        self.layout = layout
        self.dimension = layout.dimension
        self.max_seq_length = layout.max_seq_length
        self.tokenizer = layout.tokenizer()
        self._forward = forward

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        # Longest first, as sentence-transformers does: batches of similar length pad little.
        order = sorted(range(len(texts)), key=lambda row: -len(texts[row]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[row] for row in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.array([e.type_ids for e in encodings], dtype=np.int64)
            pooled = mean_pool(self._forward(ids, mask, types), mask)
            out[rows] = l2_normalise(pooled) if self.layout.normalize else pooled
        return out
