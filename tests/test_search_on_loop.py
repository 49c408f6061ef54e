"""Searches answered on the event loop when nothing would make them wait (appliance/nowait.py),
and handed to a search thread when something would: a writer at the index, a catch-up with the
store, a query not embedded ahead, a filter or reranking."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.collections.rwlock import ReadWriteLock
from appliance.embedding.cache import CachedEncoder
from appliance.embedding.encoder import Encoder
from appliance.nowait import WouldWait, holding, without_waiting
from appliance.search.pipeline import QueryVector, SearchOptions
from appliance.service import Appliance
from tests.conftest import ANIMALS

DOCS = [{"id": i, "text": t, "metadata": m} for i, t, m in ANIMALS]


def _loaded(open_appliance: Callable[..., Appliance], **overrides: Any) -> Appliance:
    from appliance.ingest.pipeline import DocumentInput

    appliance = open_appliance(**overrides)
    appliance.ensure_collection("c")
    appliance.ingest.upsert("c", [DocumentInput(**doc) for doc in DOCS])
    return appliance


@contextmanager
def _held_by_another_thread(hold: Callable[[], AbstractContextManager[Any]]) -> Iterator[None]:
    """`hold()` entered on another thread for the block's duration."""
    inside, release = threading.Event(), threading.Event()

    def run() -> None:
        with hold():
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=run)
    thread.start()
    assert inside.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join(10)


def _embedded(appliance: Appliance, query: str, options: SearchOptions) -> QueryVector:
    ahead = appliance.search.embed_ahead("c", query, options)
    assert ahead is not None
    return ahead.result(30)


def test_a_plain_search_is_answered_at_once_with_the_vector_embedded_ahead(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = _loaded(open_appliance)
    search = appliance.search
    options = SearchOptions(limit=2, mode="hybrid")
    search.search("c", "warm up: compare the collection with the store", options=options)
    embedded = _embedded(appliance, "which animal barks?", options)
    encoded = appliance.encoder.texts_encoded
    outcome = search.answer_now("c", "which animal barks?", options, embedded)
    assert outcome is not None and outcome.results[0].id == "dog"
    assert appliance.encoder.texts_encoded == encoded  # the vector from ahead was used
    assert outcome.timings_ms["embed"] >= embedded.embed_ms
    assert (search.answered_inline, search.inline_fallbacks) == (1, 0)
    expected = search.search("c", "which animal barks?", options=SearchOptions(limit=2))
    assert [hit.id for hit in outcome.results] == [hit.id for hit in expected.results]


def test_a_search_that_would_wait_is_handed_back_and_counted_once_in_the_query_log(
    open_appliance: Callable[..., Appliance],
) -> None:
    logged: list[str] = []
    appliance = _loaded(open_appliance)
    search = appliance.search
    search.query_log = lambda _collection, text, _params: logged.append(text)
    options = SearchOptions(limit=1, mode="dense")
    search.search("c", "warm up", options=options)
    logged.clear()
    live = appliance.collections.get("c")
    embedded = _embedded(appliance, "fish swimming upstream", options)
    with _held_by_another_thread(live.lock.write):
        assert search.answer_now("c", "fish swimming upstream", options, embedded) is None
    assert (search.answered_inline, search.inline_fallbacks) == (0, 1)
    assert logged == []  # stopped short: nothing seen yet
    # Run again where it may wait (a search thread): answered, logged once.
    outcome = search.submit(
        lambda: search.search("c", "fish swimming upstream", options=options, embedded=embedded)
    ).result(30)
    assert outcome.results[0].id == "salmon" and logged == ["fish swimming upstream"]


def test_filters_reranking_unembedded_queries_and_store_changes_go_to_a_thread(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = _loaded(open_appliance)
    search = appliance.search
    options = SearchOptions(limit=1, mode="dense")
    search.search("c", "warm up", options=options)
    embedded = _embedded(appliance, "a bird in the mountains", options)
    filtered = SearchOptions(limit=1, mode="dense", filter={"kind": "bird"})
    assert search.answer_now("c", "a bird", filtered, embedded) is None
    reranked = SearchOptions(limit=1, mode="dense", rerank=True)
    assert search.answer_now("c", "a bird", reranked, embedded) is None
    # Not embedded ahead: the search would wait for the embedding.
    assert search.answer_now("c", "a bird in the mountains", options, None) is None
    assert search.inline_fallbacks == 1
    # A write (here: by this process) changes the store: the first search compares again.
    from appliance.ingest.pipeline import DocumentInput

    appliance.ingest.upsert("c", [DocumentInput(id="owl", text="An owl hoots at night.")])
    assert search.answer_now("c", "a bird in the mountains", options, embedded) is None
    assert search.inline_fallbacks == 2
    search.search("c", "compare again", options=options)
    outcome = search.answer_now("c", "a bird in the mountains", options, embedded)
    assert outcome is not None and outcome.results[0].id == "eagle"


def test_no_search_is_answered_on_the_loop_when_turned_off(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = _loaded(open_appliance, search_on_event_loop=False)
    options = SearchOptions(limit=1, mode="dense")
    appliance.search.search("c", "warm up", options=options)
    embedded = _embedded(appliance, "a web to catch flies", options)
    assert appliance.search.answer_now("c", "a web to catch flies", options, embedded) is None
    assert appliance.search.inline_fallbacks == 0


def test_searches_through_the_api_are_answered_on_the_loop_or_on_a_thread(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = _loaded(open_appliance, result_cache_size=0)
    with TestClient(create_app(appliance.settings, appliance)) as client:
        for query in ("barking", "purring cat", "hunting eagle"):
            answer = client.post("/collections/c/search", json={"query": query, "limit": 1})
            assert answer.status_code == 200, answer.text
        body = {"query": "birds", "limit": 3, "filter": {"kind": "bird"}}
        answer = client.post("/collections/c/search", json=body)
        assert answer.status_code == 200
        assert {hit["id"] for hit in answer.json()["results"]} == {"eagle", "penguin"}
    search = appliance.search
    # The first compares the collection with the store (a thread); later plain ones: the loop.
    assert search.answered_inline >= 2
    assert answer.json()["results"][0]["id"] in ("eagle", "penguin")


def test_the_read_lock_refuses_to_wait_behind_a_writer_only_when_told_to() -> None:
    lock = ReadWriteLock()
    with lock.read(), without_waiting(), lock.read():  # readers share it
        pass
    refused = pytest.raises(WouldWait, match="writer")
    with _held_by_another_thread(lock.write), without_waiting(), refused, lock.read():
        pass
    with lock.read():  # free again
        pass


def test_holding_a_plain_lock_refuses_to_wait_only_when_told_to() -> None:
    lock = threading.RLock()
    with without_waiting(), holding(lock, "the thing"):
        pass  # free: taken
    with _held_by_another_thread(lambda: lock):
        refused = pytest.raises(WouldWait, match="the thing is held")
        with without_waiting(), refused, holding(lock, "the thing"):
            pass
    with holding(lock, "the thing"):
        pass


def test_submit_answers_cached_texts_at_once_and_queues_the_rest(encoder: Encoder) -> None:
    from appliance.embedding.batcher import MicroBatcher

    batcher = MicroBatcher(workers=1)
    cached = CachedEncoder(encoder, 100, batcher)
    first: Future[np.ndarray] | None = cached.submit(["a cat", "a dog"])
    assert first is not None
    vectors = first.result(30)
    np.testing.assert_allclose(vectors, encoder.encode(["a cat", "a dog"]), atol=1e-5)
    again = cached.submit(["a dog"])
    assert again is not None and again.done()  # a cache hit: no batch
    np.testing.assert_allclose(again.result(), vectors[1:], atol=1e-6)
    assert batcher.batches == 1 and cached.hits == 1
    assert CachedEncoder(encoder, 10).submit(["x"]) is None  # no batcher: the caller encodes
    batcher.close()


def test_a_serving_process_freezes_its_start_up_heap_once_started(
    open_appliance: Callable[..., Appliance],
) -> None:
    import gc

    from appliance.api.state import ApplianceHolder

    appliance = open_appliance()
    started: list[bool] = []
    real_start = appliance.start

    def start() -> None:
        real_start()
        started.append(gc.get_freeze_count() > 0)

    appliance.start = start  # type: ignore[method-assign]
    gc.unfreeze()
    holder = ApplianceHolder(appliance.settings, lambda _settings: appliance, freeze_heap=True)
    try:
        holder.start()
        holder.wait(60)
        # Frozen after start-up's work (sample corpus, warming), not before it.
        assert started == [False] and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        holder.close()
