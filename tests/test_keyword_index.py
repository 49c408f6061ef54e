"""The derived keyword index: FTS5's BM25 scores exactly, statistics per collection, kept
current by writes, caught up from the store after a crash, and saved / loaded as a cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert

from appliance.collections.manager import CollectionManager, LiveCollection
from appliance.index.registry import DEFAULT_INDEX
from appliance.keyword import index as keyword_module
from appliance.keyword.analysis import Analyzer
from appliance.keyword.index import KeywordIndex
from appliance.search.filters import compile_filter
from appliance.store import collections as collection_store
from appliance.store import documents as document_store
from appliance.store import keyword as keyword_store
from appliance.store.database import Database
from appliance.store.documents import (
    EmbeddedText,
    KeywordSource,
    NewDocument,
    content_hash,
)
from appliance.store.schema import DocumentRow

WORDS = [
    "cell",
    "protein",
    "gene",
    "tumour",
    "mouse",
    "patient",
    "risk",
    "dose",
    "study",
    "trial",
    "blood",
    "brain",
    "heart",
    "liver",
    "virus",
    "vaccine",
    "insulin",
    "glucose",
    "kinase",
    "receptor",
    "membrane",
    "neuron",
    "diet",
    "fibre",
    "sleep",
    "running",
    "runs",
    "the",
    "of",
]
QUERIES = [
    "protein kinase receptor",
    "tumour risk in patients",
    "blood glucose insulin diet",
    "virus vaccine trial",
    "heart",
    "running runs neuron",
    "the of",
    "nothing matches zebra",
]
DIM = 4


def _corpus(seed: int, count: int) -> list[tuple[str, str]]:
    """(title, text) pairs with Zipf-ish word frequencies."""
    rng = np.random.default_rng(seed)
    documents = []
    for _ in range(count):
        picks = rng.zipf(1.3, size=int(rng.integers(3, 40))) % len(WORDS)
        text = " ".join(WORDS[i] for i in picks)
        title = " ".join(WORDS[int(i)] for i in rng.integers(len(WORDS), size=2))
        documents.append((title, text))
    return documents


@pytest.fixture(scope="module")
def fts_store(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """One collection, so the FTS5 table's statistics are that collection's."""
    db = Database(Path(tmp_path_factory.mktemp("keyword-index")) / "store.sqlite3")
    with db.write() as session:
        collection = collection_store.create_collection(
            session, name="c", backend="hnswlib", spec="M=16", options={}, model_id="m"
        )
        session.execute(
            insert(DocumentRow),
            [
                {
                    "collection_id": collection.id,
                    "external_id": f"d{n}",
                    "text": text,
                    "meta": {"title": title, "year": 2000 + n % 10},
                    "content_hash": content_hash(text),
                }
                for n, (title, text) in enumerate(_corpus(3, 800))
            ],
        )
    return db


def _rounded(hits: list[tuple[int, float]]) -> list[tuple[int, float]]:
    return [(doc_id, round(score, 9)) for doc_id, score in hits]


@pytest.mark.parametrize("title_weight", [1.0, 3.0])
@pytest.mark.parametrize("limit", [1, 10, 101, 1000])
def test_scores_are_fts5_bm25(fts_store: Database, title_weight: float, limit: int) -> None:
    index = KeywordIndex()
    with fts_store.read() as session:
        assert index.catch_up(session, 1) == (800, 0)
        for query in QUERIES:
            expected = keyword_store.keyword_search(
                session, 1, query, limit, title_weight=title_weight
            )
            found = index.search(query, limit, title_weight=title_weight)
            # Same scores best first; equal scores in id order here (FTS5's order may differ).
            assert [s for _, s in _rounded(found)] == [s for _, s in _rounded(expected)], query
            assert {d for d, _ in found} == {d for d, _ in expected} or len(expected) == limit


def test_filtered_scores_are_fts5_bm25(fts_store: Database) -> None:
    where = compile_filter({"year": {"$gte": 2005}})
    assert where is not None
    index = KeywordIndex()
    with fts_store.read() as session:
        index.catch_up(session, 1)
        allowed = document_store.document_ids(session, 1, where)
        for query in QUERIES:
            expected = keyword_store.keyword_search(session, 1, query, 20, where=where)
            found = index.search(query, 20, allowed=allowed)
            assert [s for _, s in _rounded(found)] == [s for _, s in _rounded(expected)], query
            assert set(allowed.tolist()) >= {d for d, _ in found}
    assert 0 < len(allowed) < 800


def test_analysis_follows_fts5_porter_unicode61() -> None:
    analyzer = Analyzer()
    assert analyzer.words("Café_au-lait, naïve RÉSUMÉ") == ["café", "au", "lait", "naïve", "résumé"]
    assert [analyzer.stem(w) for w in ("running", "caresses", "as", "3s", "café")] == [
        "run",
        "caress",
        "as",  # shorter than 3: FTS5's porter leaves it
        "3s",
        "cafe",
    ]
    # Stop words out, distinct words kept as FTS5 phrases (two words, one stem: twice).
    assert analyzer.query_terms("the running of runs") == ["run", "run"]
    assert analyzer.query_terms("the of") == ["the", "of"]


def _source(doc_id: int, text: str, title: str = "", stamp: int = 1) -> KeywordSource:
    return KeywordSource(doc_id, title, text, stamp)


def test_writes_merges_and_compaction_equal_a_fresh_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keyword_module, "_MERGE_MIN", 16)
    corpus = _corpus(5, 300)
    index = KeywordIndex()
    final: dict[int, tuple[str, str]] = {}
    rng = np.random.default_rng(1)
    for step in range(0, 300, 10):
        batch = {n: corpus[n] for n in range(step, step + 10)}
        index.add(_source(n, text, title) for n, (title, text) in batch.items())
        final.update(batch)
        # Rewrite a few earlier documents and delete some.
        for n in rng.choice(list(final), size=3, replace=False):
            final[int(n)] = corpus[(int(n) * 7) % 300]
            index.add([_source(int(n), final[int(n)][1], final[int(n)][0], stamp=2)])
        gone = [int(n) for n in rng.choice(list(final), size=2, replace=False)]
        index.delete(gone)
        for n in gone:
            del final[n]
    fresh = KeywordIndex()
    fresh.add(_source(n, text, title) for n, (title, text) in final.items())
    assert len(index) == len(fresh) == len(final)
    for query in QUERIES:
        assert _rounded(index.search(query, 50, title_weight=3.0)) == _rounded(
            fresh.search(query, 50, title_weight=3.0)
        )


def test_saved_index_loads_equal_and_a_damaged_one_is_ignored(tmp_path: Path) -> None:
    index = KeywordIndex()
    index.add(_source(n, text, title, stamp=n) for n, (title, text) in enumerate(_corpus(2, 200)))
    index.delete([3, 4])
    index.generation = 7
    index.save(tmp_path)
    loaded = KeywordIndex.load(tmp_path)
    assert loaded is not None and loaded.generation == 7 and loaded.stamps() == index.stamps()
    for query in QUERIES:
        assert loaded.search(query, 30) == index.search(query, 30)
    loaded.add([_source(500, "zebra protein")])
    assert [d for d, _ in loaded.search("zebra", 5)] == [500]
    (tmp_path / "keyword.npz").write_bytes(b"not a snapshot")
    assert KeywordIndex.load(tmp_path) is None
    assert KeywordIndex.load(tmp_path / "absent") is None


# -- through the collection manager ------------------------------------------------------------
def open_manager(root: Path, database_url: str = "") -> CollectionManager:
    """A manager over a SQLite store in `root`, or over PostgreSQL (`database_url`); its
    indexes in `root` either way."""
    manager = CollectionManager(
        Database(database_url or root / "store.sqlite3"),
        root / "indexes",
        dimension_of=lambda _model: DIM,
        exact_filter_threshold=1_000,
    )
    manager.open_all()
    return manager


def upsert(
    manager: CollectionManager, collection: str, texts: dict[str, str], *, apply: bool = True
) -> None:
    """Store documents (title "t-<id>") and, unless `apply` is False (a crash right after the
    commit), apply the write to the live indexes."""
    live = manager.get(collection)
    vectors = np.ones((len(texts), DIM), dtype=np.float32) / 2
    documents = [
        NewDocument(ext, text, {"title": f"t-{ext}"}, content_hash(text))
        for ext, text in texts.items()
    ]
    embedded = {
        doc.external_id: EmbeddedText([(0, len(doc.text))], vectors[n : n + 1])
        for n, doc in enumerate(documents)
    }
    with live.write_lock:
        with manager.db.write() as session:
            result = document_store.upsert_documents(session, live.id, "m", documents, embedded)
        if apply:
            manager.apply(live, result)


def _peek(manager: CollectionManager, collection: str) -> LiveCollection:
    live = manager.peek(collection)
    assert live is not None
    return live


def delete(manager: CollectionManager, collection: str, ids: list[str], apply: bool = True) -> None:
    live = manager.get(collection) if apply else _peek(manager, collection)
    with live.write_lock:
        with manager.db.write() as session:
            _, result = document_store.delete_documents(session, live.id, ids)
        if apply:
            manager.apply(live, result)


def found(manager: CollectionManager, collection: str, query: str) -> list[str]:
    """External ids of the keyword hits, best first."""
    hits = _peek(manager, collection).keyword.search(query, 10)
    with manager.db.read() as session:
        documents = document_store.documents_by_ids(session, [d for d, _ in hits])
    return [documents[d].external_id for d, _ in hits]


FILLER = {f"f{n}": f"filler text number {n}" for n in range(8)}


def test_two_collections_rank_independently(tmp_path: Path, database_url: str) -> None:
    manager = open_manager(tmp_path, database_url)
    for name in ("a", "b"):
        manager.create(name, DEFAULT_INDEX, "m")
    upsert(manager, "a", {"apple": "apple apple pie", "cherry": "cherry tart", **FILLER})
    live_a = manager.get("a")
    before = live_a.keyword.search("apple cherry", 10)
    assert found(manager, "a", "apple cherry") == ["apple", "cherry"]
    # "apple" is common in b: in one shared table its idf would drop below cherry's in a too.
    upsert(manager, "b", {f"b{n}": f"apple crumble {n}" for n in range(40)})
    assert live_a.keyword.search("apple cherry", 10) == before
    assert found(manager, "a", "apple cherry") == ["apple", "cherry"]
    assert found(manager, "b", "apple cherry")[:1] == ["b0"]
    if database_url:
        return  # PostgreSQL has no FTS5 table
    # The shared FTS5 table is what this replaces: there b's documents reorder a's.
    with manager.db.read() as session:
        shared = keyword_store.keyword_search(session, live_a.id, "apple cherry", 10)
    assert [d for d, _ in shared] != [d for d, _ in before]


def test_writes_are_applied_and_leave_nothing_to_catch_up(
    tmp_path: Path, database_url: str
) -> None:
    manager = open_manager(tmp_path, database_url)
    manager.create("c", DEFAULT_INDEX, "m")
    upsert(manager, "c", {"x": "zebra stripes", "y": "lion mane", **FILLER})
    assert found(manager, "c", "zebra") == ["x"]
    upsert(manager, "c", {"x": "horse hooves"})  # updated in place: same document id
    assert found(manager, "c", "zebra") == []
    assert found(manager, "c", "hooves") == ["x"]
    assert found(manager, "c", "t-x")[:1] == ["x"]  # the title is indexed
    delete(manager, "c", ["y"])
    assert found(manager, "c", "lion") == []
    live = manager.get("c")
    with manager.db.read() as session:
        assert live.keyword.catch_up(session, live.id) == (0, 0)
    assert live.keyword.generation == live.generation


@pytest.mark.parametrize("snapshot", [True, False])
def test_a_crash_between_commit_and_apply_converges_on_restart(
    tmp_path: Path, snapshot: bool, database_url: str
) -> None:
    manager = open_manager(tmp_path, database_url)
    manager.create("c", DEFAULT_INDEX, "m")
    upsert(manager, "c", {"x": "zebra stripes", "y": "lion mane", "z": "tiger", **FILLER})
    if snapshot:
        manager.save_snapshots()
        assert (tmp_path / "indexes" / "keyword-1" / "keyword.npz").is_file()
    # Committed, acknowledged, never applied: the process dies here.
    upsert(manager, "c", {"w": "giraffe neck", "x": "horse hooves"}, apply=False)
    delete(manager, "c", ["y"], apply=False)
    assert found(manager, "c", "giraffe") == []  # the live index never saw it
    manager.db.close()

    restarted = open_manager(tmp_path, database_url)
    assert found(restarted, "c", "giraffe") == ["w"]
    assert found(restarted, "c", "hooves") == ["x"]
    assert found(restarted, "c", "zebra") == []
    assert found(restarted, "c", "lion") == []
    assert found(restarted, "c", "tiger") == ["z"]
    live = restarted.get("c")
    with restarted.db.read() as session:
        assert live.keyword.catch_up(session, live.id) == (0, 0)


def test_another_process_writes_are_caught_up_before_the_next_search(
    tmp_path: Path, database_url: str
) -> None:
    manager = open_manager(tmp_path, database_url)
    manager.create("c", DEFAULT_INDEX, "m")
    upsert(manager, "c", {"x": "zebra stripes", **FILLER})
    other = open_manager(tmp_path, database_url)
    upsert(other, "c", {"w": "giraffe neck"})
    delete(other, "c", ["x"])
    manager.get("c")  # notices the other process's generations
    assert found(manager, "c", "giraffe") == ["w"]
    assert found(manager, "c", "zebra") == []


def test_a_current_keyword_snapshot_is_used_without_reading_documents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    manager = open_manager(tmp_path, database_url)
    manager.create("c", DEFAULT_INDEX, "m")
    upsert(manager, "c", {"x": "zebra stripes", **FILLER})
    manager.save_snapshots()
    manager.db.close()

    def no_reads(*_: object) -> None:
        raise AssertionError("a current keyword snapshot needs no catch-up")

    monkeypatch.setattr(KeywordIndex, "catch_up", no_reads)
    restarted = open_manager(tmp_path, database_url)
    assert found(restarted, "c", "zebra") == ["x"]


def test_dropping_a_collection_discards_its_keyword_snapshot(
    tmp_path: Path, database_url: str
) -> None:
    manager = open_manager(tmp_path, database_url)
    manager.create("c", DEFAULT_INDEX, "m")
    upsert(manager, "c", {"x": "zebra stripes"})
    manager.save_snapshots()
    assert (tmp_path / "indexes" / "keyword-1").is_dir()
    manager.drop("c")
    assert not (tmp_path / "indexes" / "keyword-1").exists()
