"""benchmarks/peers.py, the side-by-side with txtai and Chroma: its pure parts here; the run
itself (it needs the peers' venv, `make bench-peers`) only in the slow suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.bench.metrics import drop_self_hits, ndcg_at_k
from benchmarks import peers

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / "var" / "peers-venv" / "bin" / "python"


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert peers.percentile(values, 0.5) == 50.0
    assert peers.percentile(values, 0.99) == 99.0
    assert peers.percentile(values, 1.0) == 100.0
    assert peers.percentile([7.0], 0.99) == 7.0
    assert peers.percentile([3.0, 1.0, 2.0], 0.5) == 2.0  # order of input does not matter
    with pytest.raises(ValueError):
        peers.percentile([], 0.5)
    with pytest.raises(ValueError):
        peers.percentile([1.0], 0.0)


def test_limit_keeps_every_judged_document_then_fills_in_corpus_order() -> None:
    ids = [f"d{i}" for i in range(10)]
    assert peers.select_documents(ids, {"d7"}, None) == ids
    assert peers.select_documents(ids, {"d7", "d9"}, 4) == ["d0", "d1", "d7", "d9"]
    # More judged documents than the limit: every judged one is still kept.
    assert peers.select_documents(ids, {"d2", "d5", "d8"}, 2) == ["d2", "d5", "d8"]


def test_rankings_are_scored_in_their_order_by_the_appliance_metrics() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    perfect = peers.rankings_to_run({"q1": ["a", "x"], "q2": ["b", "y"]})
    assert ndcg_at_k(perfect, qrels, 10) == pytest.approx(1.0)
    # Relevant at rank 2 for q1: 1 / log2(3); q2 missed entirely.
    late = peers.rankings_to_run({"q1": ["x", "a"], "q2": ["y"]})
    assert ndcg_at_k(late, qrels, 10) == pytest.approx((1 / 1.5849625) / 2, rel=1e-6)
    # A hit whose id is the query's own is dropped, as BEIR does.
    selfish = drop_self_hits(peers.rankings_to_run({"q1": ["q1", "a"]}))
    assert list(selfish["q1"]) == ["a"]


def _row(system: str, ingest_s: float, p50: float, ndcg: float) -> peers.Row:
    return peers.Row(
        system=system,
        docs=100,
        ingest_s=ingest_s,
        p50_ms=p50,
        p99_ms=p50 * 2,
        ndcg10=ndcg,
        queries=10,
        ingest_cpu_s=ingest_s / 2,
        p50_cpu_ms=p50 / 2,
    )


def test_comparisons_and_table_give_ratios_and_verdicts() -> None:
    rows = [
        _row("appliance (dense)", 10.0, 7.0, 0.65),
        _row("appliance (hybrid)", 10.0, 9.0, 0.70),
        _row("txtai (faiss)", 20.0, 14.0, 0.64),
        _row("chroma (hnsw)", 12.0, 8.0, 0.66),
    ]
    compared = peers.comparisons(rows, "appliance (dense)")
    assert [item["peer"] for item in compared] == ["txtai (faiss)", "chroma (hnsw)"]
    txtai, chroma = compared
    assert txtai["ingest_ratio"] == 2.0 and txtai["ingest_ok"]
    assert txtai["p50_ratio"] == 0.5 and txtai["p50_ok"]
    assert txtai["ndcg_ok"] and not chroma["ndcg_ok"]
    assert txtai["ingest_cpu_ratio"] == 2.0 and txtai["p50_cpu_ratio"] == 0.5
    # The default (hybrid) row's nDCG@10 must be above every peer's.
    assert txtai["hybrid_ndcg_delta"] == 0.06 and txtai["hybrid_ndcg_ok"]
    assert chroma["hybrid_ndcg_delta"] == 0.04 and chroma["hybrid_ndcg_ok"]
    assert not chroma["ingest_ok"] and not chroma["p50_ok"]
    table = peers.format_table(rows, compared)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["system", "docs", "ingest"]
    assert "txtai (faiss)" in lines[4] and "5.0" in lines[4]  # 100 docs / 20 s
    assert "appliance (dense) vs chroma (hnsw)" in table and "MISSED" in table
    assert "by CPU time: ingest 2.00×, p50 0.50×" in table
    assert "hybrid (the default) nDCG@10 +0.0600 (target > 0: ok)" in table
    assert json.loads(json.dumps(rows[0].as_json()))["ingest_docs_per_s"] == 10.0
    assert rows[0].as_json()["ingest_docs_per_cpu_s"] == 20.0


def test_arguments_default_to_one_thread_and_all_systems() -> None:
    args = peers.build_parser().parse_args(["data/x"])
    assert peers.validate_args(args) == ["appliance", "txtai", "chroma"]
    assert (args.threads, args.batch_size, args.limit_docs, args.k) == (1, 64, None, 10)
    assert peers.appliance_env(args) == {}
    env = peers.thread_env(args.threads)
    assert env["OMP_NUM_THREADS"] == "1" and env["HF_HUB_OFFLINE"] == "1"
    assert env["ANONYMIZED_TELEMETRY"] == "False"


def test_appliance_backend_and_env_reach_the_appliance_only() -> None:
    args = peers.build_parser().parse_args(
        ["d", "--appliance-backend", "openvino", "--appliance-env", "APPLIANCE_EMBED_BATCH=8"]
    )
    assert peers.appliance_env(args) == {
        "APPLIANCE_EMBED_BATCH": "8",
        "APPLIANCE_EMBEDDING_BACKEND": "openvino",
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        peers.parse_env_pairs(["NOEQUALS"])


@pytest.mark.parametrize(
    "argv",
    [["d", "--systems", "appliance,milvus"], ["d", "--threads", "0"], ["d", "--limit-docs", "0"]],
)
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        peers.validate_args(peers.build_parser().parse_args(argv))


def _tiny_beir(directory: Path) -> Path:
    (directory / "qrels").mkdir(parents=True)
    topics = ["heart disease", "gene expression", "vaccine trials", "protein folding"]
    with (directory / "corpus.jsonl").open("w") as fh:
        for i in range(24):
            topic = topics[i % 4]
            doc = {"_id": f"d{i}", "title": topic, "text": f"A study of {topic}, number {i}."}
            fh.write(json.dumps(doc) + "\n")
    with (directory / "queries.jsonl").open("w") as fh:
        for i, topic in enumerate(topics):
            fh.write(json.dumps({"_id": f"q{i}", "text": f"what about {topic}?"}) + "\n")
        fh.write(json.dumps({"_id": "w0", "text": "a warm-up question"}) + "\n")
    rows = ["query-id\tcorpus-id\tscore"] + [f"q{i}\td{i}\t1" for i in range(4)]
    (directory / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return directory


@pytest.mark.slow
@pytest.mark.skipif(not PEERS_PYTHON.is_file(), reason="no var/peers-venv: make bench-peers")
def test_all_three_systems_run_on_a_tiny_corpus(tmp_path: Path) -> None:
    dataset = _tiny_beir(tmp_path / "tiny")
    completed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "peers.py"), str(dataset), "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    report = json.loads(completed.stdout)
    systems = [row["system"] for row in report["rows"]]
    # The appliance's row names the backend its default (auto) settled on.
    modes = [name.split(" ")[-1] for name in systems]
    assert modes == ["(dense)", "(hybrid)", "(faiss)", "(hnsw)"]
    assert systems[0].startswith("appliance[auto=")
    assert systems[2:] == ["txtai (faiss)", "chroma (hnsw)"]
    for row in report["rows"]:
        assert row["docs"] == 24 and row["queries"] == 4
        assert row["ndcg@10"] > 0.3
    assert len(report["comparisons"]) == 2
