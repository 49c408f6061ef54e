"""The remembered vector id -> chunk lookups of dense searches (collections/chunk_cache.py)."""

from __future__ import annotations

from collections.abc import Callable

from appliance.collections.chunk_cache import ChunkCache
from appliance.ingest.pipeline import DocumentInput
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from appliance.store.documents import ChunkHit


def test_only_ids_not_remembered_are_loaded_and_unknown_ones_are_not_remembered() -> None:
    loads: list[list[int]] = []

    def load(ids: list[int]) -> dict[int, ChunkHit]:
        loads.append(ids)
        return {i: ChunkHit(i * 10, 0, 0, 5) for i in ids if i != 3}

    cache = ChunkCache()
    assert cache.lookup([1, 2, 3], load) == {1: ChunkHit(10, 0, 0, 5), 2: ChunkHit(20, 0, 0, 5)}
    assert cache.lookup([2, 3, 4], load) == {2: ChunkHit(20, 0, 0, 5), 4: ChunkHit(40, 0, 0, 5)}
    assert loads == [[1, 2, 3], [3, 4]]
    assert len(cache) == 3


def test_past_its_size_the_oldest_half_is_dropped() -> None:
    cache = ChunkCache(maxsize=4)

    def load(ids: list[int]) -> dict[int, ChunkHit]:
        return {i: ChunkHit(i, 0, 0, 1) for i in ids}

    cache.lookup([1, 2, 3, 4], load)
    cache.lookup([5], load)
    assert len(cache) == 3  # 1 and 2 dropped, 5 added
    loaded: list[list[int]] = []
    cache.lookup([1, 5], lambda ids: loaded.append(ids) or load(ids))  # type: ignore[func-returns-value]
    assert loaded == [[1]]


def test_searches_stay_right_across_updates_and_deletes_with_remembered_chunks(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = open_appliance()
    appliance.ensure_collection("c")
    docs = [
        DocumentInput(id="cat", text="The cat purrs on the warm windowsill."),
        DocumentInput(id="dog", text="A loyal dog fetches the ball and barks."),
        DocumentInput(id="fish", text="Salmon swim upstream in rivers to spawn."),
    ]
    appliance.ingest.upsert("c", docs)
    options = SearchOptions(limit=3, mode="dense")

    def ids(query: str) -> list[str]:
        return [hit.id for hit in appliance.search.search("c", query, options=options).results]

    assert ids("a purring cat")[0] == "cat"
    live = appliance.collections.get("c")
    assert len(live.chunk_cache) == 3
    # A changed text gets new vectors: the remembered old ones no longer come back.
    appliance.ingest.upsert("c", [DocumentInput(id="cat", text="An owl hoots at midnight.")])
    top = appliance.search.search("c", "an owl at night", options=options).results[0]
    assert top.id == "cat" and top.text.startswith("An owl")
    appliance.ingest.delete("c", ["dog"])
    assert "dog" not in ids("a dog barking at a ball")
