"""Side by side with peers: the appliance, txtai and Chroma on one BEIR corpus, one model.

    make bench-peers                       # creates var/peers-venv once, then runs this
    .venv/bin/python benchmarks/peers.py ../shared/data/scifact \\
        --peers-python var/peers-venv/bin/python [--limit-docs 1000] [--threads 1] [--json]

Every system runs in its own subprocess (the appliance with this interpreter, the peers with
the peers venv's), on the same documents, with the same model directory (the appliance
registry's all-MiniLM-L6-v2), the same CPU threads and the same batch sizes. Each reports
ingest throughput (empty to searchable, index build included, model load and a warm-up encode
excluded), single-query latency (one query at a time, each test query once, after a warm-up on
other queries; no result cache), and its rankings, which this process scores with the
appliance's own metric code so that every system is judged identically.

This file is also the workers' entry point (`--worker JOB`): it imports only the standard
library at the top, so the peers' interpreter can run it without the appliance installed.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = ("appliance", "txtai", "chroma")
APPLIANCE_MODES = ("dense", "hybrid")
# Targets of issue 12 (the default install on all of SciFact): the appliance's dense row
# against each peer, and its default hybrid mode's nDCG@10 above every peer's.
TARGET_INGEST_RATIO = 2.0
TARGET_P50_RATIO = 0.5


# -- pure parts (tested in tests/test_peers_bench.py) ---------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 < q <= 1.0:
        raise ValueError(f"q must be in (0, 1], got {q}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def parse_env_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`KEY=VALUE` strings (from `--appliance-env`) as a dict; a pair without `=` is an error."""
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected KEY=VALUE, got {pair!r}")
        env[key.strip()] = value
    return env


def select_documents(doc_ids: Sequence[str], relevant: set[str], limit: int | None) -> list[str]:
    """Ids to ingest: every document when `limit` is None; otherwise every document judged for
    a kept query plus the first others in corpus order, `limit` in all (more only when the
    judged documents alone exceed it). Corpus order is kept."""
    if limit is None:
        return list(doc_ids)
    room = max(0, limit - sum(1 for doc_id in doc_ids if doc_id in relevant))
    kept: list[str] = []
    for doc_id in doc_ids:
        if doc_id in relevant:
            kept.append(doc_id)
        elif room > 0:
            kept.append(doc_id)
            room -= 1
    return kept


def rankings_to_run(rankings: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """Ranked id lists as a trec-style run whose scores keep each list's order exactly."""
    return {
        query_id: {doc_id: float(len(ranking) - rank) for rank, doc_id in enumerate(ranking)}
        for query_id, ranking in rankings.items()
    }


@dataclass
class Row:
    system: str
    docs: int
    ingest_s: float
    p50_ms: float
    p99_ms: float
    ndcg10: float
    queries: int
    ingest_embed_s: float | None = None
    ingest_cpu_s: float | None = None
    query_embed_ms: float | None = None
    # CPU time of one query (p50): unlike wall time, barely moved by other processes.
    p50_cpu_ms: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.ingest_s if self.ingest_s > 0 else 0.0

    @property
    def docs_per_cpu_s(self) -> float | None:
        if not self.ingest_cpu_s:
            return None
        return self.docs / self.ingest_cpu_s

    def as_json(self) -> dict[str, Any]:
        return {
            "system": self.system,
            "docs": self.docs,
            "ingest_s": round(self.ingest_s, 3),
            "ingest_docs_per_s": round(self.docs_per_s, 2),
            "ingest_embed_s": _rounded(self.ingest_embed_s, 3),
            "ingest_cpu_s": _rounded(self.ingest_cpu_s, 3),
            "ingest_docs_per_cpu_s": _rounded(self.docs_per_cpu_s, 2),
            "query_p50_ms": round(self.p50_ms, 3),
            "query_p99_ms": round(self.p99_ms, 3),
            "query_embed_ms_mean": _rounded(self.query_embed_ms, 3),
            "query_p50_cpu_ms": _rounded(self.p50_cpu_ms, 3),
            "ndcg@10": round(self.ndcg10, 4),
            "queries": self.queries,
            **({"info": self.info} if self.info else {}),
        }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def comparisons(rows: Sequence[Row], reference: str) -> list[dict[str, Any]]:
    """The `reference` row against every row of another system: ingest throughput ratio
    (higher is better), query p50 ratio (lower is better), nDCG@10 difference, verdicts."""
    ref = next((row for row in rows if row.system == reference), None)
    if ref is None:
        return []
    family = reference.split(" ", 1)[0]
    hybrid = next(
        (row for row in rows if row.system.split(" ", 1)[0] == family and "(hybrid" in row.system),
        None,
    )
    out = []
    for peer in rows:
        if peer.system.split(" ", 1)[0] == family:
            continue
        ingest_ratio = ref.docs_per_s / peer.docs_per_s if peer.docs_per_s else math.inf
        p50_ratio = ref.p50_ms / peer.p50_ms if peer.p50_ms else math.inf
        ndcg_delta = ref.ndcg10 - peer.ndcg10
        # On a shared box wall time mostly measures the neighbours; CPU time much less so.
        cpu_ratios = {}
        if ref.docs_per_cpu_s and peer.docs_per_cpu_s:
            cpu_ratios["ingest_cpu_ratio"] = round(ref.docs_per_cpu_s / peer.docs_per_cpu_s, 3)
        if ref.p50_cpu_ms and peer.p50_cpu_ms:
            cpu_ratios["p50_cpu_ratio"] = round(ref.p50_cpu_ms / peer.p50_cpu_ms, 3)
        out.append(
            {
                "appliance": ref.system,
                "peer": peer.system,
                "ingest_ratio": round(ingest_ratio, 3),
                "ingest_ok": ingest_ratio >= TARGET_INGEST_RATIO,
                "p50_ratio": round(p50_ratio, 3),
                "p50_ok": p50_ratio <= TARGET_P50_RATIO,
                "ndcg_delta": round(ndcg_delta, 4),
                # Scores are means over a few hundred queries: a 0.0005 difference is noise.
                "ndcg_ok": ndcg_delta >= -0.0005,
                **cpu_ratios,
            }
        )
        if hybrid is not None:
            out[-1]["hybrid_ndcg_delta"] = round(hybrid.ndcg10 - peer.ndcg10, 4)
            out[-1]["hybrid_ndcg_ok"] = hybrid.ndcg10 > peer.ndcg10
    return out


def format_table(rows: Sequence[Row], compared: Sequence[Mapping[str, Any]]) -> str:
    header = (
        "system",
        "docs",
        "ingest s",
        "docs/s",
        "embed s",
        "cpu s",
        "docs/cpu-s",
        "p50 ms",
        "p99 ms",
        "p50 cpu ms",
        "q-embed ms",
        "nDCG@10",
    )
    body = [
        (
            row.system,
            str(row.docs),
            f"{row.ingest_s:.1f}",
            f"{row.docs_per_s:.1f}",
            _cell(row.ingest_embed_s, ".1f"),
            _cell(row.ingest_cpu_s, ".1f"),
            _cell(row.docs_per_cpu_s, ".1f"),
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            _cell(row.p50_cpu_ms, ".2f"),
            _cell(row.query_embed_ms, ".2f"),
            f"{row.ndcg10:.4f}",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in (header, *body)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *body)
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    for item in compared:
        lines.append(
            f"{item['appliance']} vs {item['peer']}: ingest {item['ingest_ratio']:.2f}× "
            f"(target ≥ {TARGET_INGEST_RATIO}: {_verdict(item['ingest_ok'])}), "
            f"p50 {item['p50_ratio']:.2f}× (target ≤ {TARGET_P50_RATIO}: "
            f"{_verdict(item['p50_ok'])}), nDCG@10 {item['ndcg_delta']:+.4f} "
            f"({_verdict(item['ndcg_ok'])})"
        )
        if "hybrid_ndcg_delta" in item:
            lines.append(
                f"  hybrid (the default) nDCG@10 {item['hybrid_ndcg_delta']:+.4f} "
                f"(target > 0: {_verdict(item['hybrid_ndcg_ok'])})"
            )
        if "ingest_cpu_ratio" in item and "p50_cpu_ratio" in item:
            lines.append(
                f"  by CPU time: ingest {item['ingest_cpu_ratio']:.2f}×, "
                f"p50 {item['p50_cpu_ratio']:.2f}×"
            )
    return "\n".join(lines)


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="The appliance, txtai and Chroma side by side on one BEIR corpus."
    )
    parser.add_argument("dataset", type=Path, help="BEIR directory (corpus.jsonl, queries.jsonl)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument(
        "--limit-docs",
        type=int,
        default=None,
        help="ingest only N documents: the judged ones first, then others in corpus order",
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for every system")
    parser.add_argument("--batch-size", type=int, default=64, help="model batch size")
    parser.add_argument(
        "--ingest-batch", type=int, default=256, help="documents per ingest call, every system"
    )
    parser.add_argument("--k", type=int, default=10, help="results per query (nDCG@k)")
    parser.add_argument(
        "--warmup", type=int, default=20, help="warm-up queries (not test queries) per system"
    )
    parser.add_argument(
        "--peers-python",
        default=str(ROOT / "var" / "peers-venv" / "bin" / "python"),
        help="interpreter of the peers' venv (make bench-peers creates it)",
    )
    parser.add_argument(
        "--appliance-python", default=sys.executable, help="interpreter with the appliance"
    )
    parser.add_argument(
        "--appliance-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the appliance's subprocess (repeatable)",
    )
    parser.add_argument(
        "--appliance-backend",
        default=None,
        metavar="NAME",
        help="embedding backend of the appliance (sets APPLIANCE_EMBEDDING_BACKEND)",
    )
    parser.add_argument(
        "--appliance-chunking",
        choices=("off", "on"),
        default="off",
        help="off (as the peers): embed each document's first 256 tokens, like `appliance "
        "eval`; on (a collection's default): every token, in overlapping chunks",
    )
    parser.add_argument(
        "--txtai-backend", default="faiss", help="txtai ANN backend (its default: faiss)"
    )
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="registered model name")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    return parser


def validate_args(args: argparse.Namespace) -> list[str]:
    """The systems to run, after checking the arguments; raises ValueError with the reason."""
    systems = [name.strip() for name in args.systems.split(",") if name.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or not systems:
        raise ValueError(f"--systems takes a subset of {','.join(SYSTEMS)}, got {args.systems!r}")
    for name in ("threads", "batch_size", "ingest_batch", "k"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1")
    if args.limit_docs is not None and args.limit_docs < 1:
        raise ValueError("--limit-docs must be >= 1")
    if args.warmup < 0:
        raise ValueError("--warmup must be >= 0")
    parse_env_pairs(args.appliance_env)
    return systems


def appliance_env(args: argparse.Namespace) -> dict[str, str]:
    """Extra environment of the appliance's subprocess: `--appliance-env` pairs, then
    `--appliance-backend` as APPLIANCE_EMBEDDING_BACKEND."""
    extra = parse_env_pairs(args.appliance_env)
    if args.appliance_backend:
        extra["APPLIANCE_EMBEDDING_BACKEND"] = args.appliance_backend
    return extra


def thread_env(threads: int) -> dict[str, str]:
    """Environment every worker gets: offline, no telemetry, `threads` CPU threads."""
    count = str(threads)
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "OMP_NUM_THREADS": count,
        "MKL_NUM_THREADS": count,
        "OPENBLAS_NUM_THREADS": count,
        "RAYON_NUM_THREADS": count,
        "TOKENIZERS_PARALLELISM": "false",
    }


# -- the parent ------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return run_worker(Path(argv[1]))
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        systems = validate_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    sys.path.insert(0, str(ROOT))
    from appliance.bench.beir import load_beir
    from appliance.bench.metrics import drop_self_hits, ndcg_at_k
    from appliance.ingest.sources import json_lines, read_jsonl
    from appliance.models.registry import ModelRegistry

    dataset = load_beir(args.dataset, args.split)
    model = ModelRegistry().resolve(args.model)
    documents = {doc.id: doc for doc in read_jsonl(dataset.corpus_path)}
    relevant = {doc_id for judged in dataset.qrels.values() for doc_id in judged}
    kept = select_documents(list(documents), relevant, args.limit_docs)
    warmup = [
        str(record["text"])
        for _, record in json_lines(args.dataset / "queries.jsonl")
        if str(record.get("_id")) not in dataset.queries
    ][: args.warmup]
    queries = sorted(dataset.queries.items())

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="peers-") as scratch:
        corpus = Path(scratch) / "corpus.jsonl"
        with corpus.open("w", encoding="utf-8") as handle:
            for doc_id in kept:
                doc = documents[doc_id]
                record = {"id": doc.id, "text": doc.text, "metadata": doc.metadata}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        job = {
            "corpus": str(corpus),
            "queries": queries,
            "warmup": warmup,
            "model_dir": str(model.directory),
            "threads": args.threads,
            "batch_size": args.batch_size,
            "ingest_batch": args.ingest_batch,
            # BEIR ignores a hit whose id is the query's: fetch one more, as `appliance eval`.
            "limit": args.k + 1,
            "txtai_backend": args.txtai_backend,
            "appliance_chunking": args.appliance_chunking == "on",
        }
        for system in systems:
            result = run_system(system, job, Path(scratch), args)
            for measured in result["rows"]:
                run = drop_self_hits(rankings_to_run(measured["rankings"]))
                latencies = measured["latencies_ms"]
                rows.append(
                    Row(
                        system=measured["name"],
                        docs=result["docs"],
                        ingest_s=result["ingest_s"],
                        ingest_embed_s=result.get("ingest_embed_s"),
                        ingest_cpu_s=result.get("ingest_cpu_s"),
                        p50_ms=statistics.median(latencies),
                        p99_ms=percentile(latencies, 0.99),
                        query_embed_ms=measured.get("query_embed_ms"),
                        p50_cpu_ms=statistics.median(measured["cpu_ms"]),
                        ndcg10=ndcg_at_k(run, dataset.qrels, args.k),
                        queries=len(latencies),
                        info={**result.get("info", {}), **measured.get("info", {})},
                    )
                )
            for row in rows[-len(result["rows"]) :]:
                figures = {key: value for key, value in row.as_json().items() if key != "info"}
                _progress(f"{system}: {json.dumps(figures)}")

    reference = next((row.system for row in rows if row.system.startswith("appliance")), "")
    compared = comparisons(rows, reference) if reference else []
    setup = {
        "dataset": str(args.dataset),
        "split": args.split,
        "docs": len(kept),
        "limit_docs": args.limit_docs,
        "queries": len(queries),
        "warmup_queries": len(warmup),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "ingest_batch": args.ingest_batch,
        "k": args.k,
        "model": f"{model.name} ({model.directory})",
    }
    if args.json:
        payload = {
            "setup": setup,
            "rows": [row.as_json() for row in rows],
            "comparisons": compared,
        }
        print(json.dumps(payload, indent=2))
    else:
        print(json.dumps(setup))
        print(format_table(rows, compared))
    return 0


def run_system(
    system: str, job: dict[str, Any], scratch: Path, args: argparse.Namespace
) -> dict[str, Any]:
    env = {**os.environ, **thread_env(args.threads)}
    if system == "appliance":
        python = args.appliance_python
        extra = appliance_env(args)
        env.update(extra)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        job = {**job, "appliance_env": extra}
    else:
        python = args.peers_python
        if not Path(python).is_file():
            raise SystemExit(
                f"no peers interpreter at {python}: run `make bench-peers` (it creates "
                "var/peers-venv) or pass --peers-python"
            )
    workdir = scratch / system
    workdir.mkdir()
    job_file = workdir / "job.json"
    result_file = workdir / "result.json"
    job_file.write_text(
        json.dumps({**job, "system": system, "workdir": str(workdir), "out": str(result_file)})
    )
    _progress(f"{system}: ingesting {job['corpus']} and querying ({python})")
    completed = subprocess.run(
        [python, str(Path(__file__).resolve()), "--worker", str(job_file)],
        cwd=ROOT,
        env=env,
        check=False,
    )
    if completed.returncode != 0 or not result_file.is_file():
        raise SystemExit(f"{system} worker failed with exit status {completed.returncode}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def _progress(message: str) -> None:
    print(f"[peers] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# -- workers (run in a subprocess, possibly in the peers' venv) ------------------------------
class EncodeTimer:
    """Seconds spent inside `SentenceTransformer.encode`, the same measure for every system."""

    seconds = 0.0

    @classmethod
    def install(cls) -> None:
        from sentence_transformers import SentenceTransformer

        original = SentenceTransformer.encode

        @functools.wraps(original)
        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                cls.seconds += time.perf_counter() - started

        SentenceTransformer.encode = timed


def read_documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def measure_queries(
    search: Callable[[str], list[str]], queries: Sequence[Sequence[str]], warmup: Sequence[str]
) -> dict[str, Any]:
    """Warm up on `warmup`, then time each query once: latencies, rankings, embed time."""
    for text in warmup:
        search(text)
    before = EncodeTimer.seconds
    latencies: list[float] = []
    cpu_ms: list[float] = []
    rankings: dict[str, list[str]] = {}
    for query_id, text in queries:
        wall, cpu = _clock()
        ranking = search(text)
        latencies.append((time.perf_counter() - wall) * 1000)
        cpu_ms.append((time.process_time() - cpu) * 1000)
        rankings[query_id] = ranking
    embed_ms = (EncodeTimer.seconds - before) * 1000 / max(1, len(queries))
    return {
        "latencies_ms": latencies,
        "cpu_ms": cpu_ms,
        "rankings": rankings,
        "query_embed_ms": embed_ms,
    }


def run_worker(job_file: Path) -> int:
    job = json.loads(job_file.read_text())
    import torch

    torch.set_num_threads(int(job["threads"]))
    EncodeTimer.install()
    workers = {"appliance": appliance_worker, "txtai": txtai_worker, "chroma": chroma_worker}
    result = workers[job["system"]](job)
    Path(job["out"]).write_text(json.dumps(result))
    return 0


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def appliance_worker(job: dict[str, Any]) -> dict[str, Any]:
    import msgspec

    from appliance.config import Settings, load_settings
    from appliance.index.registry import DEFAULT_INDEX
    from appliance.ingest.sources import read_jsonl
    from appliance.search.pipeline import SearchOptions
    from appliance.service import Appliance

    backend = job["appliance_env"].get("APPLIANCE_EMBEDDING_BACKEND")
    if backend and "embedding_backend" not in Settings.__struct_fields__:
        raise SystemExit(
            f"APPLIANCE_EMBEDDING_BACKEND={backend} asked, but this appliance has no "
            "embedding_backend setting: the row would silently run torch"
        )
    settings = load_settings(
        Path("/nonexistent/appliance.toml"),
        data_dir=str(Path(job["workdir"]) / "data"),
        load_sample=False,
        # The same CPU threads as the peers, whichever backend embeds.
        torch_threads=job["threads"],
        runtime_threads=job["threads"],
        embed_batch_size=job["batch_size"],
        # No result cache; the query-embedding cache holds one entry, and every timed query
        # is a different text, so neither can answer a timed query.
        result_cache_size=0,
        embedding_cache_size=1,
    )
    appliance = Appliance(settings)
    # The default backend (auto) starts on torch in a fresh data dir and switches to OpenVINO
    # once its export is made (seconds): a default install has long since switched, so the
    # timed part starts after that.
    appliance.encoder.wait_until_settled(timeout=600)
    backend = backend or f"auto={appliance.encoder.backend_name}"
    documents = list(read_jsonl(Path(job["corpus"])))
    appliance.encoder.encode([doc.text for doc in documents[:8]])  # warm-up, not timed
    embed_before = appliance.encoder.compute_seconds

    wall, cpu = _clock()
    options = {**DEFAULT_INDEX.options, "chunking": job["appliance_chunking"]}
    appliance.create_collection("corpus", msgspec.structs.replace(DEFAULT_INDEX, options=options))
    for batch in batched(documents, job["ingest_batch"]):
        appliance.ingest.upsert("corpus", batch)
    ingest_s, ingest_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    ingest_embed_s = appliance.encoder.compute_seconds - embed_before

    rows = []
    for mode in APPLIANCE_MODES:
        options = SearchOptions(limit=job["limit"], mode=mode)
        stages: dict[str, float] = {}

        def search(
            text: str, options: SearchOptions = options, stages: dict[str, float] = stages
        ) -> list[str]:
            outcome = appliance.search.search("corpus", text, options=options)
            for stage, ms in outcome.timings_ms.items():
                stages[stage] = stages.get(stage, 0.0) + ms
            return [hit.id for hit in outcome.results]

        hits_before = appliance.query_encoder.hits
        measured = measure_queries(search, job["queries"], job["warmup"])
        total = len(job["queries"]) + len(job["warmup"])
        label = f"appliance[{backend}]" if backend else "appliance"
        if job["appliance_chunking"]:
            label += "+chunks"
        measured.update(
            name=f"{label} ({mode})",
            info={
                "query_stage_ms_mean": {k: round(v / total, 3) for k, v in stages.items()},
                "embedding_cache_hits": appliance.query_encoder.hits - hits_before,
                "result_cache_hits": appliance.search.result_cache.hits,
            },
        )
        # The embed stage is timed by the appliance itself (any backend).
        measured["query_embed_ms"] = stages.get("embed", 0.0) / total
        rows.append(measured)
    live = appliance.collections.get("corpus")
    index, vectors = live.config.label, len(live.index)
    appliance.close()
    return {
        "docs": len(documents),
        "ingest_s": ingest_s,
        "ingest_cpu_s": ingest_cpu_s,
        "ingest_embed_s": ingest_embed_s,
        "info": {
            "index": index,
            "chunking": job["appliance_chunking"],
            "encoder": type(appliance.encoder).__name__,
            "vectors": vectors,
        },
        "rows": rows,
    }


def txtai_worker(job: dict[str, Any]) -> dict[str, Any]:
    from txtai import Embeddings

    documents = read_documents(Path(job["corpus"]))
    config = {
        "path": job["model_dir"],
        "method": "sentence-transformers",
        "content": True,
        "backend": job["txtai_backend"],
        "batch": job["ingest_batch"],
        "encodebatch": job["batch_size"],
    }
    # A shared models cache: the model is loaded and warmed up before the clock starts.
    models: dict[str, Any] = {}
    warm = Embeddings(config, models=models)
    warm.index([(doc["id"], doc["text"], None) for doc in documents[:8]])
    warm.close()

    embeddings = Embeddings(config, models=models)
    stream = (
        (doc["id"], {"text": doc["text"], **doc.get("metadata", {})}, None) for doc in documents
    )
    embed_before = EncodeTimer.seconds
    wall, cpu = _clock()
    embeddings.index(stream)
    ingest_s, ingest_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    ingest_embed_s = EncodeTimer.seconds - embed_before

    def search(text: str) -> list[str]:
        return [str(hit["id"]) for hit in embeddings.search(text, job["limit"])]

    measured = measure_queries(search, job["queries"], job["warmup"])
    measured.update(name=f"txtai ({job['txtai_backend']})")
    info = {"ann": embeddings.config.get("build", {}).get("settings")}
    embeddings.close()
    return {
        "docs": len(documents),
        "ingest_s": ingest_s,
        "ingest_cpu_s": ingest_cpu_s,
        "ingest_embed_s": ingest_embed_s,
        "info": info,
        "rows": [measured],
    }


def chroma_worker(job: dict[str, Any]) -> dict[str, Any]:
    import chromadb
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.config import Settings
    from sentence_transformers import SentenceTransformer

    class LocalSentenceTransformer(EmbeddingFunction[Documents]):
        """sentence-transformers from a local directory: Chroma's default function would
        download an ONNX model."""

        def __init__(self, path: str, batch_size: int) -> None:
            self.path, self.batch_size = path, batch_size
            self.model = SentenceTransformer(path, device="cpu", local_files_only=True)

        def __call__(self, input: Documents) -> Embeddings:
            vectors = self.model.encode(
                list(input),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return list(vectors)

        @staticmethod
        def name() -> str:
            return "local-sentence-transformer"

        def get_config(self) -> dict[str, Any]:
            return {"path": self.path, "batch_size": self.batch_size}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> LocalSentenceTransformer:
            return LocalSentenceTransformer(config["path"], config["batch_size"])

    documents = read_documents(Path(job["corpus"]))
    function = LocalSentenceTransformer(job["model_dir"], job["batch_size"])
    function([doc["text"] for doc in documents[:8]])  # warm-up, not timed
    client = chromadb.PersistentClient(
        path=str(Path(job["workdir"]) / "chroma"),
        settings=Settings(anonymized_telemetry=False),
    )
    embed_before = EncodeTimer.seconds
    wall, cpu = _clock()
    collection = client.create_collection(
        "corpus",
        embedding_function=function,
        configuration={"hnsw": {"space": "cosine", "num_threads": job["threads"]}},
    )
    for batch in batched(documents, job["ingest_batch"]):
        collection.add(
            ids=[doc["id"] for doc in batch],
            documents=[doc["text"] for doc in batch],
            metadatas=[doc.get("metadata") or None for doc in batch],
        )
    ingest_s, ingest_cpu_s = time.perf_counter() - wall, time.process_time() - cpu
    ingest_embed_s = EncodeTimer.seconds - embed_before
    assert collection.count() == len(documents)

    def search(text: str) -> list[str]:
        found = collection.query(query_texts=[text], n_results=job["limit"])
        return list(found["ids"][0])

    measured = measure_queries(search, job["queries"], job["warmup"])
    measured.update(name="chroma (hnsw)")
    return {
        "docs": len(documents),
        "ingest_s": ingest_s,
        "ingest_cpu_s": ingest_cpu_s,
        "ingest_embed_s": ingest_embed_s,
        "info": {"hnsw": collection.configuration_json.get("hnsw")},
        "rows": [measured],
    }


if __name__ == "__main__":
    sys.exit(main())
