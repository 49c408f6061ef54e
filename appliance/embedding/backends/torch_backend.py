"""The reference backend: sentence-transformers on torch, cpu or cuda."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import batch_to_device
from tokenizers import Tokenizer

from appliance.embedding.backends.prepacked import prepacked_copy
from appliance.embedding.backends.traced import traced_model
from appliance.embedding.passes import PASS_OVERHEAD_TOKENS, plan_passes
from appliance.models.registry import LocalModel

log = logging.getLogger(__name__)

# The packed model's vectors must be the model's own (oneDNN sums in another order: ~1e-7).
PREPACKED_TOLERANCE = 1e-4


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


class EagerModel:
    """A sentence-transformers module called as it is: features in, sentence embeddings out."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module

    def __call__(self, features: dict[str, Any]) -> torch.Tensor:
        embedding: torch.Tensor = self.module(features)["sentence_embedding"]
        return embedding


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
        # Token lengths for the pass plan (passes.py): cut where the model cuts, no padding.
        self._lengths = Tokenizer.from_str(backend.to_str())
        self._lengths.no_padding()
        if self.max_seq_length:
            self._lengths.enable_truncation(max_length=self.max_seq_length)
        self.st.eval()  # once: SentenceTransformer.encode walks every module to do it per call
        self._torch_device = torch.device(self.device)
        # On a GPU a pass's fixed cost (kernel launches) outweighs any padding: fewest passes.
        self._pass_overhead = PASS_OVERHEAD_TOKENS if self.device == "cpu" else 100_000
        # What embeds: on CPU the model traced to one graph with its linear weights packed
        # (traced.py), else a copy with them packed (prepacked.py), whichever first gives this
        # model's vectors; `st` stays as loaded (benchmarks' raw baselines).
        self.model: Callable[[dict[str, Any]], torch.Tensor] = EagerModel(self.st)
        self.embeds_with = "the loaded model"
        if self.device == "cpu":
            self.embeds_with, self.model = self._fastest_agreeing()
        log.info("torch embeds with %s", self.embeds_with)

    def _fastest_agreeing(self) -> tuple[str, Callable[[dict[str, Any]], torch.Tensor]]:
        # Padded, so that the graph applies the attention mask.
        example = self.st.preprocess(["an example sentence of a few words to trace", "short"])
        traced = traced_model(self.st, example)
        if traced is not None and self._agrees(traced):
            return "a traced graph", traced
        packed = prepacked_copy(self.st)
        if packed is not None and self._agrees(EagerModel(packed)):
            return "a prepacked copy", EagerModel(packed)
        return "the loaded model", EagerModel(self.st)

    def _agrees(self, candidate: Callable[[dict[str, Any]], torch.Tensor]) -> bool:
        """The candidate's vectors are the model's, on shapes other than a trace's example."""
        probes = (
            ["a probe sentence for the packed weights", "short", "word " * 300],
            ["one"],
        )
        try:
            with torch.inference_mode():
                for texts in probes:
                    features = self.st.preprocess(texts)
                    ours = candidate(dict(features))
                    theirs = self.st(dict(features))["sentence_embedding"]
                    if not bool((ours - theirs).abs().max() <= PREPACKED_TOLERANCE):
                        return False
        except RuntimeError as exc:  # an op the candidate's graph cannot run on these shapes
            log.info("not embedding with %s: %s", type(candidate).__name__, exc)
            return False
        return True

    def wait_until_ready(self, timeout: float | None = None) -> bool:
        return True

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """`SentenceTransformer.encode`'s own steps (passes of texts of similar length, the model's
        `preprocess`, its module pipeline, L2 normalisation): the same vectors, without the
        per-call work around them (argument checks, device resolution over every parameter,
        `eval()` over every module), about 1 ms of a lone query's 12 on one thread; on CPU
        through the traced graph (2.5 ms more, and the GIL free during the pass)."""
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        lengths = [len(encoding.ids) for encoding in self._lengths.encode_batch(list(texts))]
        with torch.inference_mode():
            for rows in plan_passes(lengths, batch_size, self._pass_overhead):
                features = self.st.preprocess([texts[row] for row in rows])
                features = batch_to_device(features, self._torch_device)
                embeddings = self.model(features)
                embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
                vectors[rows] = embeddings.float().cpu().numpy()
        return vectors
