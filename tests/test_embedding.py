import os

import numpy as np

from appliance.embedding.cache import CachedEncoder
from appliance.embedding.encoder import Encoder


def test_hub_is_offline_before_any_model_code_runs() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_encode_gives_normalised_float32_batches(encoder: Encoder) -> None:
    vectors = encoder.encode(["a cat on a mat", "stock markets fell sharply", "a kitten on a rug"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[1]
    assert encoder.max_seq_length == 256


def test_cache_counts_hits_and_misses_and_returns_same_vectors(encoder: Encoder) -> None:
    cached = CachedEncoder(encoder, maxsize=2)
    first = cached.encode(["alpha", "beta"])
    assert (cached.hits, cached.misses) == (0, 2)
    again = cached.encode(["beta", "alpha"])
    assert (cached.hits, cached.misses) == (2, 2)
    np.testing.assert_array_equal(again, first[::-1])
    cached.encode(["gamma"])  # evicts the least recently used entry
    assert len(cached) == 2


class _Fake:
    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.dimension = 2
        self.calls = 0

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        self.calls += 1
        return np.ones((len(texts), 2), dtype=np.float32)


def test_cache_key_includes_the_model_fingerprint() -> None:
    fake = _Fake("model-a")
    cached = CachedEncoder(fake, maxsize=10)
    cached.encode(["same text"])
    fake.fingerprint = "model-b"
    cached.encode(["same text"])
    assert fake.calls == 2 and cached.misses == 2
