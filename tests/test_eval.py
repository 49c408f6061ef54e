"""`appliance eval` on a small BEIR directory, through the normal ingest and search paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import main
from tests.conftest import ANIMALS

QUERIES = {
    "q1": ("which animal barks at the mailman", "dog"),
    "q2": ("a bird that hunts from high in the sky", "eagle"),
    "q3": ("fish swimming up rivers", "salmon"),
    "cat": ("sleeping on a warm windowsill", "cat"),  # its id equals a document id
}


@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    root = tmp_path / "animals"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        "\n".join(
            json.dumps({"_id": doc_id, "title": doc_id.title(), "text": text})
            for doc_id, text, _ in ANIMALS
        )
        + "\n"
    )
    (root / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": qid, "text": text}) for qid, (text, _) in QUERIES.items())
        + "\n"
    )
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{qid}\t{doc}\t1\n" for qid, (_, doc) in QUERIES.items())
    )
    return root


def _eval(beir_dir: Path, scratch: Path, *args: str) -> dict[str, object]:
    result = CliRunner().invoke(
        main,
        ["eval", str(beir_dir), "--scratch", str(scratch), "--json", *args],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def test_eval_reports_metrics_and_reuses_the_scratch_store(beir_dir: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    dense = _eval(beir_dir, scratch, "--index", "faiss:Flat", "--mode", "dense")
    assert {
        "dataset",
        "mode",
        "index",
        "ndcg@10",
        "recall@100",
        "mrr@10",
        "queries",
        "docs",
        "seconds",
    } <= set(dense)
    assert dense["dataset"] == "animals" and dense["docs"] == len(ANIMALS)
    assert dense["queries"] == len(QUERIES) and dense["index"] == "faiss:Flat"
    # The "cat" query's only relevant document is itself, which BEIR's convention drops.
    assert dense["ndcg@10"] == pytest.approx(0.75, abs=1e-6)
    kept = _eval(beir_dir, scratch, "--index", "faiss:Flat", "--keep-identical-ids")
    assert kept["ndcg@10"] == pytest.approx(1.0)
    # Another index and mode on the same data: no re-embedding, one store.
    keyword = _eval(
        beir_dir, scratch, "--index", "hnswlib:M=16,ef_construction=100", "--mode", "keyword"
    )
    assert keyword["mode"] == "keyword" and keyword["index"].startswith("hnswlib:")
    assert len(list(scratch.iterdir())) == 1
    hybrid = _eval(beir_dir, scratch, "--mode", "hybrid", "--fusion", "weighted", "--alpha", "0.7")
    assert 0.0 < float(hybrid["ndcg@10"]) <= 1.0


def test_eval_of_a_malformed_directory_says_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "broken"), "--json"])
    assert result.exit_code == 2 and "corpus.jsonl" in result.output
