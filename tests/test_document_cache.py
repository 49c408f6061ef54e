"""The documents searches show, remembered per generation (collections/document_cache.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event

from appliance.collections.document_cache import ENTRY_CHARS, DocumentCache
from appliance.ingest.pipeline import DocumentInput
from appliance.search.pipeline import SearchOptions
from appliance.service import Appliance
from appliance.store import documents as document_store
from appliance.store.documents import StoredText


def _doc(doc_id: int, text: str = "text") -> StoredText:
    return StoredText(doc_id, f"d{doc_id}", text, {})


def test_a_page_comes_whole_from_one_generation_or_not_at_all() -> None:
    cache = DocumentCache()
    assert cache.lookup(3, [1]) is None
    cache.remember(3, {1: _doc(1), 2: _doc(2)})
    assert cache.lookup(3, [2, 1]) == {2: _doc(2), 1: _doc(1)}
    assert cache.lookup(3, [1, 9]) is None  # one not remembered: read them all
    assert cache.lookup(4, [1]) is None  # another generation
    cache.remember(2, {5: _doc(5)})  # a slow reader of an older generation changes nothing
    assert cache.lookup(3, [1, 2]) is not None and cache.lookup(2, [5]) is None
    cache.remember(4, {7: _doc(7)})  # a newer generation starts empty
    assert cache.lookup(4, [7]) == {7: _doc(7)} and cache.lookup(4, [1]) is None
    assert len(cache) == 1


def test_past_its_budget_the_oldest_half_goes_and_huge_texts_are_not_kept() -> None:
    entry = len("text") + len("d1") + ENTRY_CHARS
    cache = DocumentCache(budget_chars=entry * 8)
    cache.remember(1, {i: _doc(i) for i in range(1, 9)})
    assert len(cache) == 8
    cache.remember(1, {9: _doc(9)})
    assert len(cache) == 5 and cache.lookup(1, [5, 6, 7, 8, 9]) is not None
    assert cache.lookup(1, [1]) is None
    cache.remember(1, {20: _doc(20, "x" * entry * 2)})  # over an eighth of the budget
    assert cache.lookup(1, [20]) is None


def _read_transactions(appliance: Appliance) -> list[int]:
    """Counts read transactions begun on the appliance's store (one entry each)."""
    begun: list[int] = []

    def on_begin(_: Any) -> None:
        begun.append(1)

    event.listen(appliance.db._read_engine, "begin", on_begin)
    return begun


def test_a_search_whose_page_is_remembered_reads_nothing_from_the_store_and_updates_show(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = open_appliance()
    appliance.ensure_collection("c")
    appliance.ingest.upsert(
        "c",
        [
            DocumentInput(id="cat", text="The cat purrs on the warm windowsill."),
            DocumentInput(id="dog", text="A loyal dog fetches the ball and barks."),
        ],
    )
    options = SearchOptions(limit=2, mode="dense")

    def texts(query: str) -> dict[str, str]:
        hits = appliance.search.search("c", query, options=options).results
        return {hit.id: hit.text for hit in hits}

    assert texts("a purring cat")["cat"].startswith("The cat")  # read, then remembered
    begun = _read_transactions(appliance)
    assert texts("a cat on a windowsill")["cat"].startswith("The cat")  # another query
    assert begun == []  # the page came from the cache: no read transaction at all
    appliance.ingest.upsert("c", [DocumentInput(id="cat", text="The cat sleeps all day.")])
    assert texts("a sleeping cat")["cat"] == "The cat sleeps all day."
    assert begun  # the write moved the generation on: the page was read again


def test_documents_read_after_an_unapplied_commit_are_not_remembered(
    open_appliance: Callable[..., Appliance],
) -> None:
    """A write committed but not yet applied: its documents are visible to a read the
    collection's generation does not count yet, and must not be remembered under it."""
    appliance = open_appliance()
    appliance.ensure_collection("c")
    appliance.ingest.upsert("c", [DocumentInput(id="cat", text="The cat purrs.")])
    live = appliance.collections.get("c")
    with live.reader() as snapshot:
        (cat_id,) = snapshot.documents.get(_ids(live)).keys()
    assert live.document_cache.lookup(live.generation, [cat_id]) is not None
    with live.write_lock, appliance.db.write() as session:  # committed; never applied
        document_store.bump_generation(session, live.id)
    generation = live.generation
    live.document_cache = DocumentCache()
    with live.reader() as snapshot:
        assert snapshot.documents.get([cat_id])[cat_id].text == "The cat purrs."
    assert live.document_cache.lookup(generation, [cat_id]) is None


def _ids(live: Any) -> list[int]:
    with live.db.read() as session:
        return list(document_store.document_stamps(session, live.id))
