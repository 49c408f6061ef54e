"""The derived keyword index (appliance/keyword/) against the FTS5 table it replaces, in one run:
latency at 100k documents and nDCG@10 on SciFact and NFCorpus (keyword mode, no embeddings).

    nice .venv/bin/python benchmarks/keyword_index.py                  # both parts
    nice .venv/bin/python benchmarks/keyword_index.py --skip-quality --n 20000

Latency: the 100k-document corpus of `benchmarks/keyword_corpus.py` (cached in var/keyword/),
the two data sets' test queries with 3-6 terms after stop words, interleaved query by query so
both see the same machine load; limit 101 (what `appliance eval` asks for) and 10, titles
weighing 3 as by default. Prints p50/p99 of each and the FTS5 / index ratio, and how many
rankings have different scores. Quality: each corpus stored as `appliance ingest` stores it
(title + text, the title in metadata), then both searched with limit 101, self-hits dropped,
nDCG@10 and recall@100 from the qrels. Not a timed test: a script, run on its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the editable install would import the main checkout's package instead.
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from keyword_corpus import bench_queries, build_corpus  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from appliance.bench.beir import load_beir  # noqa: E402
from appliance.bench.metrics import drop_self_hits, evaluate  # noqa: E402
from appliance.ingest.sources import read_jsonl  # noqa: E402
from appliance.keyword.index import KeywordIndex  # noqa: E402
from appliance.store import collections as collection_store  # noqa: E402
from appliance.store import documents as document_store  # noqa: E402
from appliance.store.database import Database  # noqa: E402
from appliance.store.documents import content_hash  # noqa: E402
from appliance.store.keyword import keyword_search  # noqa: E402
from appliance.store.schema import DocumentRow  # noqa: E402


def _data_dir() -> Path:
    """../shared/data from the main checkout; a worktree finds it two levels further up."""
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "data").is_dir():
            return base / "shared" / "data"
    raise SystemExit("no shared/data directory beside the checkout")


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
    }


def latency(n: int, data: Path, rounds: int, title_weight: float) -> dict[str, object]:
    db = build_corpus(ROOT / "var" / "keyword" / f"corpus-{n}.sqlite3", n, data=data)
    index = KeywordIndex()
    started = time.perf_counter()
    with db.read() as session:
        index.catch_up(session, 1)
    build_s = time.perf_counter() - started
    snapshot = ROOT / "var" / "keyword" / f"index-{n}"
    index.save(snapshot)
    started = time.perf_counter()
    loaded = KeywordIndex.load(snapshot)
    load_s = time.perf_counter() - started
    assert loaded is not None
    queries = bench_queries(data)
    out: dict[str, object] = {
        "documents": n,
        "queries": len(queries),
        "rounds": rounds,
        "index_build_s": round(build_s, 1),
        "index_load_s": round(load_s, 2),
    }
    with db.read() as session:
        for query in queries[:10]:  # warm the page cache and the code paths
            keyword_search(session, 1, query, 101, title_weight=title_weight)
            loaded.search(query, 101, title_weight=title_weight)
        for limit in (101, 10):
            fts: list[float] = []
            derived: list[float] = []
            differing = 0
            for _ in range(rounds):
                for query in queries:
                    began = time.perf_counter()
                    old = keyword_search(session, 1, query, limit, title_weight=title_weight)
                    fts.append((time.perf_counter() - began) * 1000)
                    began = time.perf_counter()
                    new = loaded.search(query, limit, title_weight=title_weight)
                    derived.append((time.perf_counter() - began) * 1000)
                    # Equal scores may come in either order; the scores themselves may not differ
                    # (6 decimals: FTS5 sums in another order).
                    differing += [round(s, 6) for _, s in old] != [round(s, 6) for _, s in new]
            fts_stats, derived_stats = _percentiles(fts), _percentiles(derived)
            out[f"limit_{limit}"] = {
                "fts5": fts_stats,
                "keyword_index": derived_stats,
                "p50_ratio_fts5_over_index": round(
                    fts_stats["p50_ms"] / derived_stats["p50_ms"], 1
                ),
                "rankings_with_different_scores": differing,
            }
    return out


def _store(path: Path, corpus: Path) -> Database:
    """The corpus stored as `appliance ingest` stores it (built once)."""
    if path.exists():
        return Database(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".building")
    staging.unlink(missing_ok=True)
    db = Database(staging)
    with db.write() as session:
        collection_store.create_collection(
            session, name="corpus", backend="hnswlib", spec="M=16", options={}, model_id="none"
        )
        rows = [
            {
                "collection_id": 1,
                "external_id": doc.id,
                "text": doc.text,
                "meta": doc.metadata,
                "content_hash": content_hash(doc.text),
            }
            for doc in read_jsonl(corpus)
        ]
        session.execute(insert(DocumentRow), rows)
    db.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{staging}{suffix}").unlink(missing_ok=True)
    staging.rename(path)
    return Database(path)


def quality(data: Path, title_weight: float) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in ("scifact", "nfcorpus"):
        dataset = load_beir(data / name, "test")
        db = _store(ROOT / "var" / "keyword" / f"eval-{name}.sqlite3", dataset.corpus_path)
        index = KeywordIndex()
        runs: dict[str, dict[str, dict[str, float]]] = {"fts5": {}, "keyword_index": {}}
        with db.read() as session:
            index.catch_up(session, 1)
            for query_id, text in dataset.queries.items():
                found = {
                    "fts5": keyword_search(session, 1, text, 101, title_weight=title_weight),
                    "keyword_index": index.search(text, 101, title_weight=title_weight),
                }
                ids = {doc_id for hits in found.values() for doc_id, _ in hits}
                external = document_store.documents_by_ids(session, list(ids))
                for form, hits in found.items():
                    runs[form][query_id] = {
                        external[doc_id].external_id: float(len(hits) - rank)
                        for rank, (doc_id, _) in enumerate(hits)
                    }
        scores = {}
        for form, run in runs.items():
            metrics = evaluate(drop_self_hits(run), dataset.qrels)
            scores[form] = {k: round(metrics[k], 4) for k in ("ndcg@10", "recall@100")}
        scores["ndcg@10_delta"] = round(
            scores["keyword_index"]["ndcg@10"] - scores["fts5"]["ndcg@10"], 4
        )
        out[name] = scores
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the queries")
    parser.add_argument("--title-weight", type=float, default=3.0)
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    data = _data_dir()
    report: dict[str, object] = {}
    if not args.skip_quality:
        report["quality_keyword_mode"] = quality(data, args.title_weight)
    if not args.skip_latency:
        report["latency"] = latency(args.n, data, args.rounds, args.title_weight)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
