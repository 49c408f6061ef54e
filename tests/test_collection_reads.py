"""A collection's reads and writes: one read transaction per search, searches side by side
inside the index, and a write that waits for them (the readers-writer lock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import event

from appliance.collections.rwlock import ReadWriteLock
from appliance.index.base import IndexConfig, SearchParams
from appliance.index.hnswlib_index import HnswlibIndex
from appliance.ingest.pipeline import DocumentInput
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from tests.conftest import ANIMALS

DOCS = [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]


@pytest.fixture
def animals(open_appliance: Any) -> Appliance:
    appliance: Appliance = open_appliance(result_cache_size=0)
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    return appliance


@pytest.fixture
def read_transactions(animals: Appliance) -> Iterator[list[int]]:
    """Each read transaction begun on the store while the test runs (one item per BEGIN)."""
    begun: list[int] = []
    engine = animals.db._read_engine

    def count(_connection: Any) -> None:
        begun.append(1)

    event.listen(engine, "begin", count)
    yield begun
    event.remove(engine, "begin", count)


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
@pytest.mark.parametrize("filtered", [False, True], ids=["unfiltered", "filtered"])
def test_a_search_reads_the_store_in_one_transaction(
    animals: Appliance, read_transactions: list[int], mode: str, filtered: bool
) -> None:
    options = SearchOptions(limit=3, mode=mode, filter={"kind": "bird"} if filtered else None)  # type: ignore[arg-type]
    animals.search.search("c", "eagles hunting", options=options)  # the collection is compared
    read_transactions.clear()
    outcome = animals.search.search("c", "penguins dive for fish", options=options)
    assert outcome.results and not outcome.cached
    assert len(read_transactions) == 1


def test_searches_share_the_index_and_a_write_waits_for_them(animals: Appliance) -> None:
    live = animals.collections.get("c")
    index = live.index
    search, add = index.search, index.add
    both_inside = threading.Barrier(2, timeout=10)
    release = threading.Event()
    events: list[str] = []

    def searching(*args: Any, **kwargs: Any) -> Any:
        both_inside.wait()  # breaks (and the test fails) unless both are inside at once
        assert release.wait(10)
        try:
            return search(*args, **kwargs)
        finally:
            events.append("search done")

    def adding(*args: Any, **kwargs: Any) -> None:
        events.append("write applied")
        add(*args, **kwargs)

    index.search, index.add = searching, adding  # type: ignore[method-assign]
    dense = SearchOptions(limit=2, mode="dense")
    answers: list[list[str]] = []
    errors: list[BaseException] = []

    def run(job: Any) -> None:
        try:
            job()
        except BaseException as exc:
            errors.append(exc)

    def one_search() -> None:
        outcome = animals.search.search("c", "a bird of prey", options=dense)
        answers.append([hit.id for hit in outcome.results])

    searches = [threading.Thread(target=run, args=(one_search,)) for _ in range(2)]
    for thread in searches:
        thread.start()
    deadline = time.monotonic() + 10
    while live.lock.readers < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert live.lock.readers == 2  # both searches hold the read side at once
    writer = threading.Thread(
        target=run,
        args=(lambda: animals.ingest.upsert("c", [DocumentInput(id="owl", text="An owl hoots")]),),
    )
    writer.start()
    time.sleep(0.3)
    # Committed to the store, but kept out of the index while the searches are inside it.
    assert writer.is_alive() and "write applied" not in events
    release.set()
    for thread in [*searches, writer]:
        thread.join(30)
    index.search, index.add = search, add  # type: ignore[method-assign]
    assert not errors
    assert events == ["search done", "search done", "write applied"]
    assert all(hits and hits[0] == "eagle" for hits in answers)
    assert "owl" in [h.id for h in animals.search.search("c", "owl hoots", options=dense).results]


def test_a_waiting_writer_goes_before_later_readers() -> None:
    lock = ReadWriteLock()
    order: list[str] = []
    reader_in = threading.Event()
    release = threading.Event()

    def first_reader() -> None:
        with lock.read():
            reader_in.set()
            release.wait(10)
            order.append("first reader")

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("late reader")

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    assert reader_in.wait(10)
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    while not lock._writers_waiting:
        time.sleep(0.001)
    threads.append(threading.Thread(target=late_reader))
    threads[2].start()
    time.sleep(0.1)
    assert order == []  # the late reader queues behind the waiting writer
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first reader", "writer", "late reader"]


def test_the_lock_can_be_taken_again_by_its_holder() -> None:
    lock = ReadWriteLock()
    with lock.write(), lock.write(), lock.read():
        pass
    with lock.read(), lock.read():
        pass
    with lock.read(), pytest.raises(RuntimeError):
        lock.write().__enter__()


def test_hnswlib_searches_at_different_ef_side_by_side_answer_as_alone() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(2_000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = HnswlibIndex.build(IndexConfig(backend="hnswlib", spec="M=16"), 32)
    index.add(np.arange(len(vectors), dtype=np.int64), vectors)
    queries = vectors[:40]
    efs = [16, 64, 256, 1024]
    alone = {ef: index.search(queries, 10, SearchParams(ef=ef))[1] for ef in efs}
    results: dict[tuple[int, int], np.ndarray] = {}

    def run(worker: int) -> None:
        for turn in range(20):
            ef = efs[(worker + turn) % len(efs)]
            results[(worker, turn)] = index.search(queries, 10, SearchParams(ef=ef))[1]

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for (worker, turn), ids in results.items():
        np.testing.assert_array_equal(ids, alone[efs[(worker + turn) % len(efs)]])
