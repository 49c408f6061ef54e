"""Micro-batching of concurrent query embeddings (right vectors, real batches) and the bound on
searches in flight (503 with Retry-After)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.embedding.backends import query_batch_workers_for
from appliance.embedding.batcher import MicroBatcher
from appliance.embedding.encoder import Encoder
from appliance.errors import Overloaded
from appliance.ingest.pipeline import DocumentInput
from appliance.search.admission import Admission
from appliance.service import Appliance

QUERIES = [f"how do I {verb} a {noun}" for verb in ("parse", "sort", "open") for noun in "abcd"]


class GatedEncoder:
    """The real encoder, whose calls wait for a gate and are recorded by size."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batch_sizes: list[int] = []

    @property
    def fingerprint(self) -> str:
        return self.encoder.fingerprint

    @property
    def dimension(self) -> int:
        return self.encoder.dimension

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        self.entered.set()
        self.gate.wait(30)
        self.batch_sizes.append(len(texts))
        return self.encoder.encode(texts)


def _wait_pending(batcher: MicroBatcher, count: int) -> None:
    for _ in range(3000):
        if batcher.pending >= count:
            return
        threading.Event().wait(0.001)
    raise AssertionError(f"{batcher.pending} pending, expected {count}")


def test_concurrent_queries_are_encoded_in_one_batch_with_their_own_vectors(
    encoder: Encoder,
) -> None:
    gated = GatedEncoder(encoder)
    batcher = MicroBatcher(workers=1, max_batch=64)
    with ThreadPoolExecutor(len(QUERIES)) as pool:
        first = pool.submit(batcher.encode, [QUERIES[0]], gated)
        assert gated.entered.wait(10)
        # The worker is busy with the first query: the others queue, then go as one batch.
        rest = [pool.submit(batcher.encode, [query], gated) for query in QUERIES[1:]]
        _wait_pending(batcher, len(QUERIES) - 1)
        gated.gate.set()
        vectors = [first.result(10)[0]] + [future.result(10)[0] for future in rest]
    assert gated.batch_sizes == [1, len(QUERIES) - 1]
    assert batcher.batches == 2 and batcher.batched_texts == len(QUERIES)
    expected = encoder.encode(QUERIES)
    np.testing.assert_allclose(np.stack(vectors), expected, atol=1e-5)
    batcher.close()


def test_a_lone_blocking_caller_encodes_on_its_own_thread(encoder: Encoder) -> None:
    threads: list[threading.Thread] = []

    class Recording(GatedEncoder):
        def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
            threads.append(threading.current_thread())
            return super().encode(texts, batch_size)

    recording = Recording(encoder)
    recording.gate.set()
    batcher = MicroBatcher(workers=2)
    vectors = batcher.encode([QUERIES[0]], recording)
    assert threads == [threading.current_thread()]
    assert batcher.batches == 1 and batcher.batched_texts == 1
    np.testing.assert_allclose(vectors, encoder.encode([QUERIES[0]]), atol=1e-5)
    # An awaited request (an event loop's) is never encoded by the thread that queued it.
    batcher.submit([QUERIES[1]], recording).result(10)
    assert threads[1] is not threading.current_thread()
    batcher.close()


def test_callers_encoding_inline_take_workers_places(encoder: Encoder) -> None:
    gated = GatedEncoder(encoder)
    batcher = MicroBatcher(workers=2)
    with ThreadPoolExecutor(3) as pool:
        inline = pool.submit(batcher.encode, [QUERIES[0]], gated)
        assert gated.entered.wait(10)
        # One place left: a worker takes the next request; the third waits for a place.
        second = batcher.submit([QUERIES[1]], gated)
        for _ in range(3000):
            if batcher.pending == 0:
                break
            threading.Event().wait(0.001)
        assert batcher.pending == 0
        third = pool.submit(batcher.encode, [QUERIES[2]], gated)
        _wait_pending(batcher, 1)
        threading.Event().wait(0.05)
        assert batcher.pending == 1 and len(gated.batch_sizes) == 0
        gated.gate.set()
        for future in (inline, second, third):
            future.result(10)
    assert sorted(gated.batch_sizes) == [1, 1, 1] and batcher.batches == 3
    batcher.close()


def test_batches_hold_at_most_max_batch_texts(encoder: Encoder) -> None:
    gated = GatedEncoder(encoder)
    batcher = MicroBatcher(workers=1, max_batch=4)
    with ThreadPoolExecutor(len(QUERIES)) as pool:
        futures = [pool.submit(batcher.encode, [QUERIES[0]], gated)]
        assert gated.entered.wait(10)
        futures += [pool.submit(batcher.encode, [query], gated) for query in QUERIES[1:]]
        _wait_pending(batcher, len(QUERIES) - 1)
        gated.gate.set()
        for future in futures:
            future.result(10)
    assert gated.batch_sizes == [1, 4, 4, 3]
    batcher.close()


def test_past_the_bound_new_searches_are_refused() -> None:
    admission = Admission(2)
    with admission, admission:
        with pytest.raises(Overloaded, match="max_pending_queries"):
            admission.__enter__()
        assert admission.in_flight == 2
    assert admission.in_flight == 0 and admission.refused == 1
    with admission:  # room again once the searches in flight are answered
        assert admission.in_flight == 1


def test_an_encoder_error_reaches_every_caller_of_the_batch() -> None:
    class Broken:
        fingerprint = "broken"
        dimension = 3

        def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
            raise ValueError("model file unreadable")

    batcher = MicroBatcher(workers=1)
    with pytest.raises(ValueError, match="unreadable"):
        batcher.encode(["x"], Broken())
    batcher.close()


def test_an_overloaded_search_is_answered_503_with_retry_after(
    open_appliance: Callable[..., Appliance], monkeypatch: Any
) -> None:
    appliance = open_appliance(query_batch_workers=1, max_pending_queries=2)
    appliance.ensure_collection("default")
    appliance.ingest.upsert("default", [DocumentInput(id="a", text="a cat sleeps")])
    gate, entered = threading.Event(), threading.Event()
    real_encode = appliance.encoder.encode

    def gated_encode(texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        entered.set()
        gate.wait(30)
        return real_encode(texts, batch_size)

    monkeypatch.setattr(appliance.encoder, "encode", gated_encode)
    assert appliance.query_batcher is not None
    with TestClient(create_app(appliance.settings, appliance)) as client:

        def search(query: str) -> Any:
            return client.post("/collections/default/search", json={"query": query})

        with ThreadPoolExecutor(2) as pool:
            busy = pool.submit(search, "sleeping cats")
            assert entered.wait(10)
            waiting = pool.submit(search, "a napping cat")
            for _ in range(3000):  # the second search is admitted and waits for the first
                if appliance.search.admission.in_flight == 2:
                    break
                threading.Event().wait(0.001)
            refused = search("a third query")
            gate.set()
            assert busy.result(30).status_code == 200
            assert waiting.result(30).status_code == 200
    assert refused.status_code == 503
    assert refused.json()["error"] == "overloaded"
    assert refused.headers["Retry-After"] == "1"
    assert "max_pending_queries" in refused.json()["detail"]
    # A cached answer needs no admission: it is served however busy the server is.
    app = create_app(appliance.settings, appliance)
    with appliance.search.admission, appliance.search.admission, TestClient(app) as client:
        again = client.post("/collections/default/search", json={"query": "sleeping cats"})
        fresh = client.post("/collections/default/search", json={"query": "a dog"})
    assert again.status_code == 200 and again.json()["cached"] is True
    assert fresh.status_code == 503


def test_a_batch_is_embedded_in_passes_of_the_configured_size_with_the_same_vectors(
    encoder: Encoder,
) -> None:
    seen: list[int | None] = []

    class Recording:
        fingerprint = encoder.fingerprint
        dimension = encoder.dimension

        def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
            seen.append(batch_size)
            return encoder.encode(texts, batch_size)

    batcher = MicroBatcher(workers=1, pass_size=3)
    vectors = batcher.encode(QUERIES, Recording())
    assert seen == [3]
    # Passes of 3, longest first, give the vectors one pass of all of them gives.
    np.testing.assert_allclose(vectors, encoder.encode(QUERIES), atol=1e-5)
    batcher.close()
    assert MicroBatcher(pass_size=0).pass_size is None  # 0: the encoder's own batch size


def test_query_batch_workers_default_to_the_backends_own(
    open_appliance: Callable[..., Appliance], monkeypatch: Any
) -> None:
    """OpenVINO runs one inference at a time: one worker, whose batches are twice as big."""
    assert query_batch_workers_for("openvino") == 1
    assert query_batch_workers_for("torch") == query_batch_workers_for("onnx") == 2
    on_torch = open_appliance()
    assert on_torch.query_batcher is not None and on_torch.query_batcher.workers == 2
    # The shared test encoder is torch's: what counts is the backend an encoder settles on.
    monkeypatch.setattr(on_torch.encoder, "settled_backend_name", "openvino")
    openvino_batcher = open_appliance().query_batcher
    assert openvino_batcher is not None and openvino_batcher.workers == 1
    chosen = open_appliance(query_batch_workers=3).query_batcher
    assert chosen is not None and chosen.workers == 3  # a setting wins
    assert open_appliance(query_batch_workers=0).query_batcher is None
