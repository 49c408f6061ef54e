"""BEIR directory loading: a tiny dataset in tmp_path, malformed inputs, and the real SciFact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.bench.beir import BeirDataset, load_beir
from appliance.errors import InvalidRequest

SCIFACT = Path("/work/shared/data/scifact")


def _write_dataset(root: Path, *, test_qrels: str | None = None) -> Path:
    directory = root / "tiny"
    (directory / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr.", "metadata": {"lang": "en"}},
        {"_id": "d2", "title": "Dogs", "text": "Dogs bark."},
        {"_id": "d3", "title": "", "text": "Birds sing."},
    ]
    queries = [
        {"_id": "q1", "text": "what purrs"},
        {"_id": "q2", "text": "what barks", "metadata": {}},
        {"_id": "q3", "text": "only in train"},
    ]
    (directory / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (directory / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    if test_qrels is None:
        test_qrels = "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\nq2\td2\t1\n"
    (directory / "qrels" / "test.tsv").write_text(test_qrels)
    (directory / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td3\t1\n")
    return directory


def test_loads_tiny_dataset(tmp_path: Path) -> None:
    directory = _write_dataset(tmp_path)
    dataset = load_beir(directory)
    assert dataset == BeirDataset(
        name="tiny",
        corpus_path=directory / "corpus.jsonl",
        queries={"q1": "what purrs", "q2": "what barks"},
        qrels={"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}},
    )


def test_split_selects_qrels_and_queries(tmp_path: Path) -> None:
    dataset = load_beir(_write_dataset(tmp_path), split="train")
    assert dataset.queries == {"q3": "only in train"}
    assert dataset.qrels == {"q3": {"d3": 1}}


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="not found"):
        load_beir(tmp_path / "nope")


@pytest.mark.parametrize("relative", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_missing_file_is_named(tmp_path: Path, relative: str) -> None:
    directory = _write_dataset(tmp_path)
    (directory / relative).unlink()
    with pytest.raises(InvalidRequest, match=relative.replace(".", r"\.")):
        load_beir(directory)


def test_missing_split_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=r"dev\.tsv"):
        load_beir(_write_dataset(tmp_path), split="dev")


@pytest.mark.parametrize(
    ("qrels", "message"),
    [
        ("qid\tdoc\tscore\nq1\td1\t1\n", r"test\.tsv:1: expected header"),
        ("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2 d2 1\n", r"test\.tsv:3: expected 3"),
        ("query-id\tcorpus-id\tscore\nq1\td1\thigh\n", r"test\.tsv:2: score must be an integer"),
        ("query-id\tcorpus-id\tscore\nq9\td1\t1\n", r"absent from .*queries\.jsonl: q9"),
    ],
)
def test_bad_qrels_line_is_named(tmp_path: Path, qrels: str, message: str) -> None:
    directory = _write_dataset(tmp_path, test_qrels=qrels)
    with pytest.raises(InvalidRequest, match=message):
        load_beir(directory)


def test_bad_queries_line_is_named(tmp_path: Path) -> None:
    directory = _write_dataset(tmp_path)
    with (directory / "queries.jsonl").open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(InvalidRequest, match=r"queries\.jsonl:4: invalid JSON"):
        load_beir(directory)


def test_query_without_text_is_rejected(tmp_path: Path) -> None:
    directory = _write_dataset(tmp_path)
    with (directory / "queries.jsonl").open("a") as fh:
        fh.write(json.dumps({"_id": "q4"}) + "\n")
    with pytest.raises(InvalidRequest, match=r"queries\.jsonl:4: .*'text'"):
        load_beir(directory)


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="SciFact not present on this machine")
def test_scifact_counts() -> None:
    dataset = load_beir(SCIFACT)
    assert dataset.name == "scifact"
    assert dataset.corpus_path == SCIFACT / "corpus.jsonl"
    assert len(dataset.queries) == 300
    assert set(dataset.queries) == set(dataset.qrels)
    assert sum(len(docs) for docs in dataset.qrels.values()) == 339
