"""OpenVINO's fixed-length graphs against its dynamic graph, one query at a time.

Both run in this process on the same queries, alternating query by query (which goes first
alternates too), on the backend the appliance loads: its export in DATA_DIR/models, its
precision (bf16 where the CPU has it), the given threads. Prints each p50, their ratio, the
memory the fixed-length graphs added and the least cosine between the two graphs' vectors.

    .venv/bin/python benchmarks/fixed_lengths.py ../shared/data/scifact ../shared/data/nfcorpus
    .venv/bin/python benchmarks/fixed_lengths.py ../shared/data/scifact --lengths 16,32 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from appliance.embedding.backends.export_cache import ensure_export
from appliance.embedding.backends.openvino_backend import IR_RECIPE, OpenVinoBackend, build_ir
from appliance.models.registry import ModelRegistry


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def read_queries(folders: Sequence[Path], per_set: int) -> list[str]:
    texts: list[str] = []
    for folder in folders:
        lines = (folder / "queries.jsonl").read_text().splitlines()
        texts += [json.loads(line)["text"] for line in lines if line.strip()][:per_set]
    return texts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+", type=Path, help="BEIR folders (queries.jsonl)")
    parser.add_argument("--per-set", type=int, default=300, help="queries from each folder")
    parser.add_argument("--lengths", default="8,16,24,32,48,64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None, help="exports here (default: temp)")
    args = parser.parse_args(argv)
    lengths = [int(item) for item in args.lengths.split(",") if item.strip()]

    model = ModelRegistry().resolve("all-MiniLM-L6-v2")
    with tempfile.TemporaryDirectory() as scratch:
        exports = (args.data_dir or Path(scratch)) / "models"
        ensure_export(  # made once, before anything is measured
            exports,
            model.fingerprint,
            "openvino",
            IR_RECIPE,
            lambda target: build_ir(model.directory, target),
        )
        start = rss_mib()
        plain = OpenVinoBackend(model, exports, bf16=True, threads=args.threads)
        one_backend = rss_mib() - start
        fixed = OpenVinoBackend(
            model, exports, bf16=True, threads=args.threads, fixed_lengths=lengths
        )
        fixed.wait_until_ready()
        # What the fixed-length graphs add beyond a backend without them.
        added = rss_mib() - start - 2 * one_backend
        queries = read_queries(args.datasets, args.per_set)
        for text in queries[:20]:  # warm-up: every graph's first inference allocates
            plain.embed([text], 1)
            fixed.embed([text], 1)
        timings: dict[str, list[float]] = {"dynamic": [], "fixed": []}
        cosines: list[float] = []
        for turn in range(args.rounds):
            for index, text in enumerate(queries):
                order = [("dynamic", plain), ("fixed", fixed)]
                if (index + turn) % 2:
                    order.reverse()
                vectors = {}
                for name, backend in order:
                    started = time.perf_counter()
                    vectors[name] = backend.embed([text], 1)[0]
                    timings[name].append((time.perf_counter() - started) * 1000)
                cosines.append(float(vectors["dynamic"] @ vectors["fixed"]))
    dynamic_p50 = statistics.median(timings["dynamic"])
    fixed_p50 = statistics.median(timings["fixed"])
    print(
        json.dumps(
            {
                "queries": len(queries),
                "rounds": args.rounds,
                "threads": args.threads,
                "lengths": lengths,
                "dynamic_p50_ms": round(dynamic_p50, 3),
                "fixed_p50_ms": round(fixed_p50, 3),
                "ratio": round(fixed_p50 / dynamic_p50, 3),
                "rss_added_mib": round(added),
                "least_cosine": round(min(cosines), 6),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
