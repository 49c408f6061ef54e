"""Keyword (FTS5 BM25), hybrid fusion, chunking, rescoring and cross-encoder reranking."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import CrossEncoder

from appliance.embedding.chunking import chunk_spans
from appliance.errors import InvalidRequest
from appliance.index.base import IndexConfig
from appliance.ingest.pipeline import DocumentInput
from appliance.search.fusion import reciprocal_rank_fusion, weighted_fusion
from appliance.search.pipeline import SearchOptions
from appliance.search.preprocess import normalize_query
from appliance.service import Appliance
from appliance.store.keyword import match_expression
from tests.conftest import ANIMALS

DOCS = [DocumentInput(id=i, text=t, metadata=m) for i, t, m in ANIMALS]


def ids(appliance: Appliance, query: str, **options: object) -> list[str]:
    outcome = appliance.search.search("c", query, options=SearchOptions(**options))  # type: ignore[arg-type]
    return [hit.id for hit in outcome.results]


# -- keyword --------------------------------------------------------------------------------
def test_keyword_search_ranks_by_bm25_with_stemming(appliance: Appliance) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    # "spins" / "webs" stem to the same terms as the spider text.
    assert ids(appliance, "spinning webs", mode="keyword")[0] == "spider"
    assert ids(appliance, "zebra quantum", mode="keyword") == []


def test_keyword_index_follows_every_write_in_the_same_transaction(appliance: Appliance) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    appliance.ingest.upsert("c", [DocumentInput(id="dog", text="A tuba solo in the park.")])
    assert ids(appliance, "barks mailman", mode="keyword") == []
    assert ids(appliance, "tuba", mode="keyword") == ["dog"]
    appliance.ingest.delete("c", ["dog"])
    assert ids(appliance, "tuba", mode="keyword") == []
    with sqlite3.connect(appliance.settings.database_path) as raw:
        fts_rows = raw.execute("SELECT count(*) FROM documents_fts").fetchone()[0]
        documents = raw.execute("SELECT count(*) FROM documents").fetchone()[0]
    assert fts_rows == documents == len(DOCS) - 1


def test_keyword_search_applies_filters_and_title_field(appliance: Appliance) -> None:
    appliance.create_collection("c")
    appliance.ingest.upsert(
        "c",
        [
            DocumentInput(id="a", text="river fish", metadata={"title": "Salmon", "lang": "en"}),
            DocumentInput(id="b", text="salmon recipes", metadata={"lang": "de"}),
        ],
    )
    assert set(ids(appliance, "salmon", mode="keyword")) == {"a", "b"}
    assert ids(appliance, "salmon", mode="keyword", filter={"lang": "en"}) == ["a"]


def test_fts_syntax_in_queries_is_inert() -> None:
    assert match_expression('title:x OR "y" NEAR(z) *') == '"title" OR "x" OR "y" OR "near" OR "z"'
    assert match_expression("!!! ---") is None


def test_stop_words_are_dropped_unless_the_query_is_only_stop_words() -> None:
    assert match_expression("the cat in the hat") == '"cat" OR "hat"'
    assert match_expression("to be or not to be") == '"to" OR "be" OR "or" OR "not"'


# -- hybrid ---------------------------------------------------------------------------------
def test_reciprocal_rank_fusion_by_hand() -> None:
    fused = dict(reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    assert list(fused) == ["b", "a", "c"]


def test_weighted_fusion_normalises_each_list() -> None:
    fused = dict(weighted_fusion([("a", 0.9), ("b", 0.5)], [("b", 12.0), ("c", 2.0)], alpha=0.5))
    assert fused == {"a": pytest.approx(0.5), "b": pytest.approx(0.5), "c": pytest.approx(0.0)}


def test_hybrid_finds_what_either_retriever_finds(appliance: Appliance) -> None:
    appliance.create_collection("c")
    docs = [*DOCS, DocumentInput(id="code", text="Error XJ-4471 in module frobnicate")]
    appliance.ingest.upsert("c", docs)
    hybrid = ids(appliance, "XJ-4471 frobnicate", mode="hybrid", limit=3)
    assert hybrid[0] == "code"
    weighted = ids(appliance, "animal that barks", mode="hybrid", fusion="weighted", alpha=0.8)
    assert weighted[0] == "dog"
    outcome = appliance.search.search(
        "c", "barks", options=SearchOptions(mode="hybrid", filter={"kind": "bird"})
    )
    assert {hit.id for hit in outcome.results} <= {"eagle", "penguin"}
    assert {"embed", "retrieve", "keyword", "fuse"} <= set(outcome.timings_ms)


# -- chunking -------------------------------------------------------------------------------
def test_chunk_spans_overlap_and_cover_the_text() -> None:
    offsets = [(i * 5, i * 5 + 4) for i in range(10)]
    assert chunk_spans(50, offsets, 20, 2) == [(0, 50)]
    spans = chunk_spans(50, offsets, 4, 1)
    assert spans[0] == (0, 19) and spans[1] == (15, 34) and spans[-1][1] == 50


def test_long_text_is_chunked_and_hit_reports_its_best_chunk(appliance: Appliance) -> None:
    appliance.create_collection("c")
    filler = "The committee discussed the quarterly budget at great length. " * 60
    needle = "Volcanic eruptions release sulfur dioxide into the stratosphere."
    long_text = filler + needle + " " + filler
    appliance.ingest.upsert("c", [*DOCS, DocumentInput(id="long", text=long_text)])
    with sqlite3.connect(appliance.settings.database_path) as raw:
        chunks = raw.execute(
            "SELECT count(*) FROM vectors v JOIN documents d ON d.id = v.document_id "
            "WHERE d.external_id = 'long'"
        ).fetchone()[0]
    assert chunks > 2
    outcome = appliance.search.search("c", "volcano sulfur emissions", limit=3)
    hit = outcome.results[0]
    assert hit.id == "long" and hit.chunk is not None
    assert needle in long_text[hit.chunk.start : hit.chunk.end]
    assert [h.id for h in outcome.results].count("long") == 1  # one hit per document
    short = appliance.search.search("c", "which animal barks", limit=1).results[0]
    assert short.chunk is not None and (short.chunk.start, short.chunk.end) == (0, len(short.text))


def test_chunking_can_be_turned_off_per_collection(appliance: Appliance) -> None:
    appliance.create_collection(
        "c", IndexConfig(backend="faiss", spec="Flat", options={"chunking": False})
    )
    appliance.ingest.upsert("c", [DocumentInput(id="long", text="word " * 2000)])
    assert len(appliance.collections.get("c").index) == 1


# -- rescore --------------------------------------------------------------------------------
def test_compressed_index_candidates_are_rescored_with_exact_vectors(appliance: Appliance) -> None:
    appliance.create_collection("c", IndexConfig(backend="faiss", spec="PQ4x4"))
    rng = np.random.default_rng(1)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "lambda"]
    docs = [
        DocumentInput(id=f"d{i}", text=" ".join(rng.choice(words, 6)) + f" number {i}")
        for i in range(1200)
    ]
    appliance.ingest.upsert("c", docs)
    query = "gamma delta kappa number 17"
    outcome = appliance.search.search("c", query, options=SearchOptions(limit=5, mode="dense"))
    exact = (
        appliance.encoder.encode([query])[0]
        @ appliance.encoder.encode([hit.text for hit in outcome.results]).T
    )
    np.testing.assert_allclose([hit.score for hit in outcome.results], exact, atol=1e-4)
    assert [hit.score for hit in outcome.results] == sorted(
        (hit.score for hit in outcome.results), reverse=True
    )


# -- rerank ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight BERT classifier with a tokenizer written here: no weights ship."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory = tmp_path_factory.mktemp("tiny-cross-encoder")
    words = {w.lower().strip(".,?") for _, text, _ in ANIMALS for w in text.split()}
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words), "which", "animal"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(directory / "vocab.txt")).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


def test_rerank_reorders_candidates_by_the_cross_encoder(
    open_appliance: object, tiny_cross_encoder: Path
) -> None:
    appliance = open_appliance(rerank_model=str(tiny_cross_encoder))  # type: ignore[operator]
    appliance.create_collection("c")
    appliance.ingest.upsert("c", DOCS)
    query = "which animal barks"
    outcome = appliance.search.search(
        "c", query, options=SearchOptions(limit=6, rerank=True, rerank_top_n=6)
    )
    reference = CrossEncoder(str(tiny_cross_encoder), local_files_only=True)
    scores = reference.predict([(query, hit.text) for hit in outcome.results])
    assert [hit.score for hit in outcome.results] == pytest.approx(
        sorted(np.asarray(scores).ravel().tolist(), reverse=True), abs=1e-5
    )
    assert "rerank" in outcome.timings_ms
    assert appliance.reranker().pairs_scored == 6


def test_rerank_without_a_model_is_a_clear_400(appliance: Appliance) -> None:
    appliance.create_collection("c")
    with pytest.raises(InvalidRequest, match="cross-encoder"):
        appliance.search.search("c", "x", options=SearchOptions(rerank=True))


# -- preprocessing --------------------------------------------------------------------------
def test_query_normalisation_folds_unicode_whitespace_and_length() -> None:
    assert normalize_query("  ｆｕｌｌ\u3000width\t\n query\x07 ", 100) == "full width query"
    assert normalize_query("ﬁne", 100) == "fine"
    capped = normalize_query("word " * 100, 42)
    assert len(capped) <= 42 and not capped.endswith(" ")
    with pytest.raises(InvalidRequest, match="empty"):
        normalize_query(" \x00 \t", 100)


def test_query_normalisation_drops_every_control_and_format_character() -> None:
    """Printable text skips the character-by-character pass; anything else takes it."""
    import random
    import unicodedata

    def reference(text: str) -> str:
        text = unicodedata.normalize("NFKC", text)
        text = "".join(c for c in text if c.isspace() or unicodedata.category(c)[0] != "C")
        return " ".join(text.split())

    pool = "ab Z9é漢\u00a0\u200b\u200e\u2028\ufeff\x07\x1f\t\n\u3000ﬁ\U0001f600\ue000"
    rng = random.Random(3)
    for _ in range(500):
        text = "q" + "".join(rng.choice(pool) for _ in range(rng.randint(0, 12)))
        assert normalize_query(text, 1000) == reference(text), repr(text)
