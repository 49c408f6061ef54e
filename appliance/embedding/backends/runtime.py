"""The part every exported backend shares: tokenize, plan the passes by length (passes.py), run
the graph, mean-pool and normalise in float32, exactly as sentence-transformers does."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from tokenizers import Tokenizer

from appliance.embedding.backends.layout import ModelLayout
from appliance.embedding.passes import plan_passes

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
        # The same tokenizer without padding: each pass pads its own rows (passes.py).
        self._unpadded = Tokenizer.from_str(self.tokenizer.to_str())
        self._unpadded.no_padding()
        self._pad_id = int((self.tokenizer.padding or {}).get("pad_id", 0))
        self._forward = forward

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        return True

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        encodings = self._unpadded.encode_batch(list(texts))
        lengths = [len(encoding.ids) for encoding in encodings]
        for rows in plan_passes(lengths, batch_size):
            # Right-padded to the pass's longest, as the padding tokenizer would give them.
            width = lengths[rows[0]]
            ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            types = np.zeros((len(rows), width), dtype=np.int64)
            for line, row in enumerate(rows):
                encoding = encodings[row]
                size = lengths[row]
                ids[line, :size] = encoding.ids
                mask[line, :size] = 1
                types[line, :size] = encoding.type_ids
            pooled = mean_pool(self._forward(ids, mask, types), mask)
            out[rows] = l2_normalise(pooled) if self.layout.normalize else pooled
        return out
