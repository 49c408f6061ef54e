"""Batch text encoding with a local embedding model, through a chosen backend (torch,
onnxruntime, OpenVINO); the same surface and the same statistics whichever runs."""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # before sentence_transformers is imported, whoever imports us

import numpy as np
from tokenizers import Tokenizer

from appliance.embedding.backends import (
    AUTO,
    EmbeddingBackend,
    check_backend,
    export_is_ready,
    load_backend,
    resolve_backend,
)
from appliance.models.model_id import ModelId
from appliance.models.registry import LocalModel, check_complete

log = logging.getLogger(__name__)


def pick_device(requested: str) -> str:
    from appliance.embedding.backends.torch_backend import pick_device as torch_pick_device

    return torch_pick_device(requested)


def _runtime(threads: int | None, runtime_threads: int | None) -> int | None:
    return threads if runtime_threads is None else runtime_threads


def default_export_dir() -> Path:
    from appliance.config import load_settings

    return load_settings().data_path / "models"


class Encoder:
    """Turns texts into L2-normalised float32 vectors, in batches.

    With backend "auto" and no OpenVINO export yet, it embeds with torch at once while a
    background thread exports the model, then switches to OpenVINO: the same model id and
    vectors within cosine 0.9999, so nothing stored or cached changes.
    """

    def __init__(
        self,
        model: LocalModel,
        *,
        device: str = "auto",
        batch_size: int = 64,
        threads: int | None = None,
        backend: str = "torch",
        export_dir: Path | None = None,
        runtime_threads: int | None = None,
        fixed_lengths: Sequence[int] = (),
    ) -> None:
        """`threads`: CPU threads per encode (torch's, and the others' unless
        `runtime_threads` gives theirs; 0 = every core). `fixed_lengths`: token lengths
        OpenVINO compiles one-text graphs for (backends/fixed_lengths.py)."""
        check_complete(model.directory)
        self.model = model
        self.requested_backend = check_backend(backend)
        resolved = resolve_backend(backend, device)
        # The backend it embeds with once settled (at once, or after an export).
        self.settled_backend_name = resolved
        self.device = "cpu" if resolved != "torch" else pick_device(device)
        self.batch_size = batch_size
        exports = export_dir or default_export_dir()
        self._fixed_lengths = tuple(fixed_lengths)
        # Set once the backend is the one it will stay on (at once, unless exporting).
        self._settled = threading.Event()
        self._backend: EmbeddingBackend
        if backend == AUTO and not export_is_ready(resolved, model, exports):
            self.backend_name = "torch"
            self._backend = load_backend(
                "torch", model, device="cpu", threads=threads, export_dir=exports
            )
            # Not a daemon: a process that ends during the export waits for it (seconds), so
            # no half-written export directory is left behind.
            threading.Thread(
                target=self._switch_to,
                args=(resolved, device, _runtime(threads, runtime_threads), exports),
                name="embedding-export",
            ).start()
        else:
            self.backend_name = resolved
            if resolved != "torch":
                threads = _runtime(threads, runtime_threads)
            self._backend = load_backend(
                resolved,
                model,
                device=device,
                threads=threads,
                export_dir=exports,
                fixed_lengths=self._fixed_lengths,
            )
            self._settled.set()
        # The raw SentenceTransformer for benchmarks' baselines; None for exported backends.
        self._st: Any = getattr(self._backend, "st", None)
        self.dimension: int = self._backend.dimension
        # The sequence length comes from the sentence-transformers config (256 for MiniLM).
        self.max_seq_length: int = self._backend.max_seq_length
        # A private copy: counting and chunking must see every token, never a truncated list.
        self._tokenizer = Tokenizer.from_str(self._backend.tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        # Vectors that are the same model's (cosine >= 0.9999 against torch: onnx fp32,
        # OpenVINO bf16/f32) keep the model's id and fingerprint, so switching to a faster
        # backend neither re-embeds a collection nor cools the embedding cache. A lossy variant
        # (int8) gets its own fingerprint and id: its vectors must never share an index or an
        # embedding-cache entry with the source model's.
        variant = self._backend.lossy_variant
        if variant is None:
            self._fingerprint = model.fingerprint
            self._model_id = model.model_id
        else:
            digest = hashlib.sha256(f"{model.fingerprint}:{variant}".encode()).hexdigest()
            self._fingerprint = digest[:16]
            self._model_id = str(ModelId(model.name, self._fingerprint, variant))
        self.texts_encoded = 0
        self.tokens_encoded = 0
        self.compute_seconds = 0.0
        self._stats_lock = threading.Lock()

    def _switch_to(self, backend: str, device: str, threads: int | None, exports: Path) -> None:
        started = time.perf_counter()
        try:
            faster = load_backend(
                backend,
                self.model,
                device=device,
                threads=threads,
                export_dir=exports,
                fixed_lengths=self._fixed_lengths,
            )
            if faster.dimension != self.dimension or faster.lossy_variant is not None:
                raise ValueError(f"{backend} does not give this model's vectors")
            self._backend = faster
            self.backend_name = backend
            log.info(
                "embedding with %s from now on (exported in %.1f s)",
                backend,
                time.perf_counter() - started,
            )
        except Exception:  # the model stays served by torch; say why once
            log.exception("could not prepare the %s backend: embedding stays on torch", backend)
        finally:
            self._settled.set()

    def wait_until_settled(self, timeout: float | None = None) -> bool:
        """Wait for a background switch of backend (backend "auto" on a first start), then
        for the backend's own background work (OpenVINO's fixed-length graphs). It embeds
        meanwhile; benchmarks wait, so that they time the steady state."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._settled.wait(timeout):
            return False
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._backend.wait_until_ready(left)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Each text's tokens as character spans, without special tokens or truncation."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [list(encoding.offsets) for encoding in encodings]

    @property
    def window(self) -> int:
        """Tokens the model reads of one text, [CLS] and [SEP] included; encoding cuts the
        rest off, as sentence-transformers does."""
        return self.max_seq_length or 512

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.get_vocab_size())

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """Each text's length in tokens, without special tokens or truncation."""
        encodings = self._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)
        return [len(encoding.ids) for encoding in encodings]

    def read_tokens(self, length: int) -> int:
        """Tokens the model reads of a text `length` tokens long: [CLS] and [SEP] included,
        cut at the window."""
        return min(length + 2, self.window)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model reads for these texts: [CLS] and [SEP] included, each text cut at
        the model's sequence length as encoding cuts it."""
        return sum(self.read_tokens(length) for length in self.token_lengths(texts))

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids (special tokens dropped: encoding adds its own)."""
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=True))

    @property
    def max_chunk_tokens(self) -> int:
        """Tokens that fit one window beside the model's [CLS] and [SEP]."""
        return max(8, self.max_seq_length - 2)

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode texts to an (n, dimension) C-contiguous float32 array of unit vectors.
        `batch_size`: texts per forward pass (default: the encoder's); every backend sorts the
        texts by length first, so smaller passes pad less."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        started = time.perf_counter()
        vectors = self._backend.embed(list(texts), batch_size or self.batch_size)
        elapsed = time.perf_counter() - started
        tokens = self.count_tokens(texts)
        with self._stats_lock:
            self.texts_encoded += len(texts)
            self.tokens_encoded += tokens
            self.compute_seconds += elapsed
        return np.ascontiguousarray(vectors, dtype=np.float32)
