"""Keyword (FTS5 BM25) search latency at 100k documents: the old query form against the new one,
interleaved query by query in the same run, so both see the same machine load.

    nice .venv/bin/python benchmarks/keyword_latency.py            # 100k documents
    nice .venv/bin/python benchmarks/keyword_latency.py --n 20000 --limit 10

The corpus (`benchmarks/keyword_corpus.py`: documents assembled from SciFact and NFCorpus
sentences, with titles) is built once into var/keyword/ (~40 s, ~500 MB). Queries: the two data
sets' test queries with 3-6 terms after stop words. `--limit 101` is what `appliance eval`
asks for (100 + 1); hybrid search asks for 100 candidates. Titles weigh 3, as by default.
Prints p50/p99 per form, their ratio, and how many rankings differ (they must not).
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
from sqlalchemy.orm import Session  # noqa: E402

from appliance.store.keyword import joined_search, keyword_search, match_expression  # noqa: E402


def old_keyword_search(
    session: Session, collection_id: int, query: str, limit: int, title_weight: float
) -> list[tuple[int, float]]:
    """The query form before this change: join every match to its document, then sort."""
    expression = match_expression(query)
    if expression is None:
        return []
    return joined_search(session, collection_id, expression, limit, None, (title_weight, 1.0))


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=101)
    parser.add_argument("--title-weight", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the queries")
    args = parser.parse_args()

    db = build_corpus(ROOT / "var" / "keyword" / f"corpus-{args.n}.sqlite3", args.n)
    queries = bench_queries()
    timings: dict[str, list[float]] = {"old": [], "new": []}
    differing = 0
    with db.read() as session:
        for query in queries[:10]:  # warm the page cache for both forms
            old_keyword_search(session, 1, query, args.limit, args.title_weight)
        for _ in range(args.rounds):
            for query in queries:
                started = time.perf_counter()
                old = old_keyword_search(session, 1, query, args.limit, args.title_weight)
                timings["old"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                new = keyword_search(session, 1, query, args.limit, title_weight=args.title_weight)
                timings["new"].append((time.perf_counter() - started) * 1000)
                old_scores = [round(score, 9) for _, score in old]
                new_scores = [round(score, 9) for _, score in new]
                # Equal scores may come in either order; the scores themselves may not differ.
                differing += old_scores != new_scores
    old_stats, new_stats = _percentiles(timings["old"]), _percentiles(timings["new"])
    print(
        json.dumps(
            {
                "documents": args.n,
                "queries": len(queries),
                "rounds": args.rounds,
                "limit": args.limit,
                "old": old_stats,
                "new": new_stats,
                "p50_speedup": round(old_stats["p50_ms"] / new_stats["p50_ms"], 2),
                "p99_speedup": round(old_stats["p99_ms"] / new_stats["p99_ms"], 2),
                "rankings_with_different_scores": differing,
            }
        )
    )


if __name__ == "__main__":
    main()
