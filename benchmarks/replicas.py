"""Search throughput of 1, 2 and 3 `appliance serve` replicas over one store behind nginx
(deploy/nginx/appliance-replicas.conf), in one run, driven by wrk with fresh queries (none
repeated in the run, so no result-cache hits) over the sample corpus.

    .venv/bin/python benchmarks/replicas.py [--database-url postgresql+psycopg://...]
        [--seconds 20] [--connections 32] [--mode hybrid] [--backend torch]

Without --database-url the replicas share one SQLite file (the one-host layout). Needs wrk
and nginx (Debian packages). On a box with fewer cores than replicas x the cores one replica
keeps busy, the box caps the figure, not the replicas: the output prints the core count.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from concurrency import (  # noqa: E402
    WRK_SCRIPT,
    embedding_limit,
    fresh_queries,
    measure,
)

from tests.cluster.harness import Cluster  # noqa: E402


class _Target:
    """What concurrency.run_wrk drives: a base URL."""

    def __init__(self, base: str) -> None:
        self.base = base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    queries = fresh_queries()
    limit = embedding_limit(queries, args.backend)
    cores = len(os.sched_getaffinity(0))
    print(
        f"{cores} cores; one process embeds {limit:.1f} queries/s in batches of 32 ({args.backend})"
    )
    points = []
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        url = args.database_url or f"sqlite:///{root / 'store' / 'appliance.sqlite3'}"
        (root / "store").mkdir()
        cluster = Cluster(
            workdir=root / "cluster",
            database_url=url,
            admin_key=None,
            settings={"embedding_backend": args.backend},
        )
        cluster.workdir.mkdir()
        script = root / "fresh.lua"
        script.write_text(WRK_SCRIPT)
        queries_file = root / "queries.txt"
        queries_file.write_text("\n".join(json.dumps(q)[1:-1] for q in queries[:-2048]) + "\n")
        cursor = [0]
        try:
            replicas = [cluster.start_replica(load_sample=True)]
            replicas += [cluster.start_replica() for _ in range(args.replicas - 1)]
            for count in range(1, args.replicas + 1):
                proxy = cluster.start_proxy(replicas[:count])
                point = measure(
                    f"{count} replica(s)",
                    _Target(proxy),  # type: ignore[arg-type]
                    script,
                    queries_file,
                    cursor,
                    args.mode,
                    args.connections,
                    args.seconds,
                )
                points.append(point)
                print(
                    f"{count} replica(s) {args.mode} c={args.connections}: "
                    f"{point.req_per_s:.1f} req/s, p50 {point.p50_ms:.1f} ms, "
                    f"p99 {point.p99_ms:.1f} ms, errors {point.errors}, 503s {point.overloaded}",
                    flush=True,
                )
        finally:
            cluster.stop()
    base = points[0].req_per_s or 1.0
    for point in points:
        print(f"{point.label}: {point.req_per_s / base:.2f}x one replica")
    if args.json:
        print(json.dumps({"limit": limit, "cores": cores, "points": [p.__dict__ for p in points]}))


if __name__ == "__main__":
    main()
