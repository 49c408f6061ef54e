"""Cross-encoder reranking with a sentence-transformers `CrossEncoder` from a local directory."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np

from appliance.embedding.encoder import pick_device
from appliance.models.registry import LocalModel, check_complete


class Reranker:
    def __init__(self, model: LocalModel, *, device: str = "auto", batch_size: int = 32) -> None:
        check_complete(model.directory, kind="cross-encoder")
        self.model = model
        self.batch_size = batch_size
        # Imported here: with an onnx/openvino embedding backend and no reranker configured, the
        # process never loads torch (about 300 MiB of RSS).
        from sentence_transformers import CrossEncoder

        self._cross_encoder = CrossEncoder(
            str(model.directory), device=pick_device(device), local_files_only=True
        )
        self._lock = threading.Lock()
        self.pairs_scored = 0

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Relevance of each text to the query; higher is better."""
        if not texts:
            return np.empty(0, dtype=np.float32)
        scores = self._cross_encoder.predict(
            [(query, text) for text in texts],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        with self._lock:
            self.pairs_scored += len(texts)
        return np.asarray(scores, dtype=np.float32).reshape(len(texts), -1)[:, -1]
