"""Embedding backends side by side on SciFact-length passages: passages/s, single-query p50,
cosine and top-10 overlap against torch, and peak RSS, each backend in its own process.

    .venv/bin/python benchmarks/embedding_backends.py                 # 1 thread, all backends
    .venv/bin/python benchmarks/embedding_backends.py --threads 0     # every core (quiet box)

Exports are made (or reused) under --export-dir before anything is timed. Every ratio is
against torch measured in the same run; the workers run one after the other, so they share the
box's load as evenly as a shared box allows (its load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
BACKENDS = ("torch", "onnx", "onnx-int8", "openvino", "openvino-f32")


def read_texts(path: Path, limit: int) -> list[str]:
    """The first `limit` texts of a BEIR JSONL file, each title and text joined."""
    texts: list[str] = []
    with path.open() as handle:
        for line in handle:
            row = json.loads(line)
            texts.append(" ".join(part for part in (row.get("title"), row["text"]) if part))
            if len(texts) == limit:
                break
    return texts


def worker(args: argparse.Namespace) -> None:
    """One backend in this process: time it, save its vectors, report peak RSS."""
    sys.path.insert(0, str(ROOT))
    from appliance.embedding.encoder import Encoder
    from appliance.models.registry import ModelRegistry

    model = ModelRegistry().resolve("all-MiniLM-L6-v2")
    started = time.perf_counter()
    encoder = Encoder(
        model,
        device="cpu",
        batch_size=args.batch_size,
        threads=args.threads,
        backend=args.worker,
        export_dir=args.export_dir,
    )
    load_seconds = time.perf_counter() - started
    if args.prepare:
        return
    passages = read_texts(args.data / "corpus.jsonl", args.passages)
    queries = read_texts(args.data / "queries.jsonl", args.queries)
    encoder.encode(passages[: args.batch_size])  # warm-up: first-shape compilation, allocators
    rounds = []
    for _ in range(args.rounds):
        begun = time.perf_counter()
        passage_vectors = encoder.encode(passages)
        rounds.append(time.perf_counter() - begun)
    latencies = []
    query_vectors = np.empty((len(queries), encoder.dimension), dtype=np.float32)
    for row, query in enumerate(queries):
        begun = time.perf_counter()
        query_vectors[row] = encoder.encode([query])[0]
        latencies.append(time.perf_counter() - begun)
    np.savez(args.out / f"{args.worker}.npz", passages=passage_vectors, queries=query_vectors)
    report = {
        "backend": args.worker,
        "model_id": encoder.model_id,
        "load_s": round(load_seconds, 2),
        "passages_per_s": len(passages) / min(rounds),
        "query_p50_ms": 1000 * float(np.median(latencies)),
        "tokens_per_passage": encoder.count_tokens(passages) / len(passages),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    (args.out / f"{args.worker}.json").write_text(json.dumps(report))


def _run_worker(args: argparse.Namespace, backend: str, out: Path, *, prepare: bool) -> None:
    command = [
        sys.executable,
        __file__,
        "--worker",
        backend,
        "--out",
        str(out),
        *("--data", str(args.data), "--export-dir", str(args.export_dir)),
        *("--threads", str(args.threads), "--batch-size", str(args.batch_size)),
        *("--passages", str(args.passages), "--queries", str(args.queries)),
        *("--rounds", str(args.rounds)),
        *(["--prepare"] if prepare else []),
    ]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(command, check=True, env=env)


def top_k_overlap(
    queries_a: np.ndarray,
    docs_a: np.ndarray,
    queries_b: np.ndarray,
    docs_b: np.ndarray,
    k: int = 10,
) -> float:
    top_a = np.argsort(-(queries_a @ docs_a.T), axis=1)[:, :k]
    top_b = np.argsort(-(queries_b @ docs_b.T), axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top_a, top_b, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SCIFACT, help="BEIR dir (SciFact).")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--threads", type=int, default=1, help="0 = every core.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--export-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    backends = [name.strip() for name in args.backends.split(",")]
    if backends[0] != "torch":
        backends = ["torch", *[name for name in backends if name != "torch"]]
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch)
        for backend in backends:
            _run_worker(args, backend, out, prepare=True)  # export now, never while timed
        load = os.getloadavg()
        for backend in backends:
            _run_worker(args, backend, out, prepare=False)
        rows = [json.loads((out / f"{name}.json").read_text()) for name in backends]
        vectors = {name: np.load(out / f"{name}.npz") for name in backends}
        reference = vectors["torch"]
        for row in rows:
            mine = vectors[row["backend"]]
            cosines = np.sum(mine["passages"] * reference["passages"], axis=1)
            row["cosine_mean"] = float(cosines.mean())
            row["cosine_min"] = float(cosines.min())
            row["top10_overlap"] = top_k_overlap(
                mine["queries"], mine["passages"], reference["queries"], reference["passages"]
            )
        torch_row = rows[0]
        for row in rows:
            row["throughput_x"] = row["passages_per_s"] / torch_row["passages_per_s"]
            row["latency_x"] = row["query_p50_ms"] / torch_row["query_p50_ms"]
    threads = "every core" if args.threads == 0 else f"{args.threads} thread(s)"
    print(
        f"\n{args.passages} SciFact passages (~{torch_row['tokens_per_passage']:.0f} tokens), "
        f"batch {args.batch_size}, {threads}, {args.queries} single queries; "
        f"load average before timing {load[0]:.2f} on {os.cpu_count()} cores\n"
    )
    print(
        "| backend | passages/s | × torch | query p50 ms | × torch | cosine mean / min "
        "| top-10 overlap | peak RSS MiB | load s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['backend']} | {row['passages_per_s']:.1f} | {row['throughput_x']:.2f} "
            f"| {row['query_p50_ms']:.2f} | {row['latency_x']:.2f} "
            f"| {row['cosine_mean']:.5f} / {row['cosine_min']:.5f} | {row['top10_overlap']:.3f} "
            f"| {row['peak_rss_mib']:.0f} | {row['load_s']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"load": load, "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
