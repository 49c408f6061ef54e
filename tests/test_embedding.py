import os

import numpy as np
import pytest
import torch

from appliance.embedding.backends import prepacked, torch_backend, traced
from appliance.embedding.backends.prepacked import PrepackedLinear
from appliance.embedding.backends.torch_backend import EagerModel, TorchBackend
from appliance.embedding.backends.traced import TracedModel
from appliance.embedding.cache import CachedEncoder
from appliance.embedding.encoder import Encoder
from appliance.models.registry import ModelRegistry


def test_hub_is_offline_before_any_model_code_runs() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_encode_gives_normalised_float32_batches(encoder: Encoder) -> None:
    vectors = encoder.encode(["a cat on a mat", "stock markets fell sharply", "a kitten on a rug"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[1]
    assert encoder.max_seq_length == 256


def test_torch_backend_gives_sentence_transformers_own_vectors(encoder: Encoder) -> None:
    """The torch backend runs `encode`'s steps itself: same vectors, same input order, across
    pass sizes and texts long enough to be cut at the model's window."""
    texts = [f"text {n} " + "word " * (n * 7 % 300) for n in range(23)] + ["", "a"]
    reference = encoder._st.encode(texts, normalize_embeddings=True, show_progress_bar=False)
    for pass_size in (1, 4, 64):
        vectors = encoder.encode(texts, batch_size=pass_size)
        np.testing.assert_allclose(vectors, reference, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_torch_embeds_on_cpu_through_a_traced_graph_with_packed_linear_layers(
    encoder: Encoder,
) -> None:
    backend = encoder._backend
    assert isinstance(backend, TorchBackend) and backend.embeds_with == "a traced graph"
    assert isinstance(backend.model, TracedModel)
    graph_ops = {node.kind() for node in backend.model.graph.graph.nodes()}
    assert "aten::linear" not in graph_ops and "mkldnn::_linear_pointwise" in graph_ops
    plain = [m for m in encoder._st.modules() if type(m) is torch.nn.Linear]
    assert backend.model.packed_linear_layers == len(plain) > 0
    assert not any(m.weight.is_mkldnn for m in plain)  # the loaded model is left as it was


def test_the_graph_gives_the_same_vectors_to_concurrent_callers(encoder: Encoder) -> None:
    """The query batcher's workers embed side by side through one traced graph."""
    from concurrent.futures import ThreadPoolExecutor

    texts = [[f"query {n} about " + "topic " * (n % 9)] for n in range(24)]
    alone = [encoder.encode(t, batch_size=8) for t in texts]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda t: encoder.encode(t, batch_size=8), texts))
    for one, other in zip(alone, together, strict=True):
        np.testing.assert_allclose(one, other, atol=1e-6)


@pytest.mark.parametrize(
    ("failure", "embeds_with"),
    [
        ("no onednn", "a traced graph"),
        ("untraceable", "a prepacked copy"),
        ("different vectors", "the loaded model"),
    ],
)
def test_torch_falls_back_to_what_gives_the_models_vectors(
    monkeypatch: pytest.MonkeyPatch, failure: str, embeds_with: str
) -> None:
    if failure == "no onednn":
        monkeypatch.setattr(prepacked, "can_prepack", lambda: False)
        monkeypatch.setattr(traced, "can_prepack", lambda: False)
    elif failure == "untraceable":

        def cannot_trace(*args: object, **kwargs: object) -> None:
            raise RuntimeError("Tracer cannot infer type of output")

        monkeypatch.setattr(torch.jit, "trace", cannot_trace)
    else:
        monkeypatch.setattr(torch_backend, "PREPACKED_TOLERANCE", -1.0)
    model = ModelRegistry().resolve("all-MiniLM-L6-v2")
    backend = TorchBackend(model, device="cpu", threads=None)
    assert backend.embeds_with == embeds_with
    if failure == "no onednn":
        assert isinstance(backend.model, TracedModel) and backend.model.packed_linear_layers == 0
    if failure == "untraceable":
        assert isinstance(backend.model, EagerModel)
        assert any(isinstance(m, PrepackedLinear) for m in backend.model.module.modules())
    if failure == "different vectors":
        assert isinstance(backend.model, EagerModel) and backend.model.module is backend.st
    texts = ["still embeds", "and a second, longer text to pad the first"]
    reference = backend.st.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(backend.embed(texts, 8), reference, atol=1e-6)


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
