"""SciFact ingest and the dense query path on CUDA against the CPU, in one run (issue 12 item 9).

Runs on the lent GPU machine through benchmarks/gpu_ingest.sh, from the kit that
scripts/device_kit.sh builds (`make device-kit`); docs/performance.md, "GPU (item 9)", gives
the call. Both devices use the torch backend, the appliance's own ingest path
(`Appliance.ingest.upsert` in batches, chunking on as by default) and the same float32 weights
(the kit's, cast back from float16). Each ingest goes into a fresh data dir.

- CUDA ingests the whole corpus (once per --cuda-batch-sizes entry); the CPU ingests its first
  --cpu-docs documents, and CUDA's time over those same documents gives the like-for-like ratio.
- Query p50/p99 of dense searches (result cache off) on each device, against the same
  collection (the CUDA run's, reopened with the CPU encoder), so only the device differs.
- The device each encoder really embedded on (its parameters' device, `embeds_with`): a CUDA
  run that ran on the CPU fails the script instead of reporting a CPU figure as a GPU one.

Without CUDA it says "no CUDA device", runs the CPU part and exits 0 only with --allow-cpu-only.

    python3 benchmarks/gpu_ingest.py --kit .devkit --out var/gpu-ingest [--allow-cpu-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file on the device, where the repo is not installed
    sys.path.insert(0, str(ROOT))

from benchmarks.gpu_kit import read_manifest, unpack_corpus, unpack_model  # noqa: E402
from benchmarks.peers import percentile  # noqa: E402

COLLECTION = "scifact"
# Exit status without CUDA and without --allow-cpu-only; 1 is any failure.
NO_CUDA_EXIT = 2
# The `device` setting of the accelerated runs (the tests stand the CPU in for it, to walk
# the CUDA branch on a machine without one).
ACCELERATOR = "cuda"
# Texts whose vectors the CUDA and CPU encoders must agree on.
AGREEMENT_TEXTS = 64


def _log(message: str) -> None:
    print(f"[gpu-ingest] {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    found: dict[str, Any] = {
        "python": platform.python_version(),
        # What the machine's image brings (the kit brings the rest).
        "packages": {
            name: _version(name)
            for name in ("sentence-transformers", "transformers", "tokenizers", "numpy")
        },
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "cpu_count": os.cpu_count(),
    }
    # Item 9's ANN index on the GPU needs a GPU build of FAISS; say whether one is here.
    try:
        import faiss

        found["faiss"] = getattr(faiss, "__version__", "?")
        found["faiss_gpus"] = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
    except ImportError:
        found["faiss"] = None
        found["faiss_gpus"] = 0
    return found


def settings_for(data_dir: Path, model_dir: Path, device: str, args: argparse.Namespace) -> Any:
    from appliance.config import load_settings

    return load_settings(
        Path("/nonexistent/appliance.toml"),
        data_dir=str(data_dir),
        model=str(model_dir),
        device=device,
        embedding_backend="torch",
        embed_batch_size=args.embed_batch_size,
        # Every core for the CPU run: bulk ingest on an idle box (the setting's own advice).
        torch_threads=args.cpu_threads,
        load_sample=False,
        warm_top_queries=0,
        # Every timed query is a fresh text and no result is cached: the query is embedded.
        result_cache_size=0,
        embedding_cache_size=1,
    )


def encoder_facts(encoder: Any) -> dict[str, Any]:
    """Where the encoder really runs: its parameters' device, not only what was asked."""
    st = getattr(encoder, "_st", None)
    parameter_device = str(next(st.parameters()).device) if st is not None else None
    return {
        "device": encoder.device,
        "backend": encoder.backend_name,
        "embeds_with": getattr(encoder._backend, "embeds_with", None),
        "parameter_device": parameter_device,
    }


def runs_on(facts: dict[str, Any], device: str) -> bool:
    """Whether an encoder's weights are on `device` (a silent CPU fallback is not CUDA)."""
    return str(facts.get("parameter_device") or "").startswith(device)


def ingest(
    appliance: Any, documents: Sequence[Any], batch: int, mark: int | None = None
) -> dict[str, Any]:
    """Upsert `documents` in batches into a fresh collection; seconds in all, and at `mark`
    documents (the CPU run's subset) when the corpus gets there."""
    import torch

    appliance.encoder.encode([doc.text for doc in documents[:8]])  # warm-up (kernels, trace)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    appliance.create_collection(COLLECTION)
    tokens_before = appliance.encoder.tokens_encoded
    embed_before = appliance.encoder.compute_seconds
    at_mark = None
    started = time.perf_counter()
    for start in range(0, len(documents), batch):
        # upsert returns after the commit, and the vectors are on the host by then.
        appliance.ingest.upsert(COLLECTION, documents[start : start + batch])
        done = min(start + batch, len(documents))
        if mark is not None and at_mark is None and done >= mark:
            at_mark = (done, time.perf_counter() - started)
    seconds = time.perf_counter() - started
    result = {
        "docs": len(documents),
        "seconds": round(seconds, 3),
        "docs_per_s": round(len(documents) / seconds, 1),
        "vectors": len(appliance.collections.get(COLLECTION).index),
        "tokens_embedded": appliance.encoder.tokens_encoded - tokens_before,
        "embed_seconds": round(appliance.encoder.compute_seconds - embed_before, 3),
    }
    if at_mark is not None:
        result["first_docs"] = at_mark[0]
        result["first_docs_per_s"] = round(at_mark[0] / at_mark[1], 1)
    if torch.cuda.is_available():
        result["cuda_peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return result


def time_queries(appliance: Any, queries: Sequence[str], warmup: int) -> dict[str, Any]:
    """Dense searches through the service, one at a time: wall ms each, p50/p99."""
    from appliance.search.pipeline import SearchOptions

    options = SearchOptions(limit=10, mode="dense")
    for text in queries[:warmup]:
        appliance.search.search(COLLECTION, f"warm-up: {text}", options=options)
    latencies, embed_ms = [], []
    for text in queries:
        started = time.perf_counter()
        outcome = appliance.search.search(COLLECTION, text, options=options)
        latencies.append((time.perf_counter() - started) * 1000)
        embed_ms.append(outcome.timings_ms.get("embed", 0.0))
    return {
        "queries": len(queries),
        "collection_docs": appliance.describe_collection(COLLECTION).documents,
        "p50_ms": round(percentile(latencies, 0.5), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "embed_p50_ms": round(percentile(embed_ms, 0.5), 3),
    }


def agreement(first: Any, second: Any, texts: Sequence[str]) -> dict[str, float]:
    """Cosine of two encoders' vectors for the same texts."""
    import numpy as np

    a, b = first.encode(list(texts)), second.encode(list(texts))
    cosines = np.sum(a * b, axis=1)
    return {"min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean())}


def run(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    from appliance.ingest.sources import read_jsonl
    from appliance.service import Appliance

    env = environment()
    cuda = bool(env["cuda_available"])
    _log(json.dumps(env))
    if not cuda:
        _log("no CUDA device: running the CPU part only")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpu-ingest-"))
    model_dir = unpack_model(args.kit, work / "model")
    corpus, queries_file = unpack_corpus(args.kit, work / "scifact")
    documents = list(read_jsonl(corpus))
    if args.limit_docs:
        documents = documents[: args.limit_docs]
    with queries_file.open() as handle:
        queries = [json.loads(line)["text"] for line in handle if line.strip()]
    queries = queries[: args.queries]
    cpu_docs = min(args.cpu_docs, len(documents))
    packed_model = read_manifest(args.kit)["model"]
    summary: dict[str, Any] = {
        "environment": env,
        "model": {
            "name": packed_model["name"],
            "weights": "float16 in the kit, cast back to float32 before loading (both devices)",
            "cast_vs_original": packed_model.get("cast_vs_original"),
        },
        "corpus_docs": len(documents),
        "settings": {
            "embedding_backend": "torch",
            "embed_batch_size": args.embed_batch_size,
            "upsert_batch": args.upsert_batch,
            "cpu_threads": args.cpu_threads,
            "cpu_docs": cpu_docs,
        },
        "cuda": None,
        "cpu": None,
        "ratios": None,
    }
    status = 0
    cuda_appliance = None
    full_collection_dir = work / "data-cpu"  # where the query path is timed
    if cuda:
        runs = []
        for size in args.cuda_batch_sizes:
            args_for = argparse.Namespace(**{**vars(args), "embed_batch_size": size})
            data_dir = work / f"data-cuda-{size}"
            _log(f"cuda: ingest {len(documents)} docs, embed batch {size}")
            appliance = Appliance(settings_for(data_dir, model_dir, ACCELERATOR, args_for))
            facts = encoder_facts(appliance.encoder)
            result = {"embed_batch_size": size, "encoder": facts}
            result.update(ingest(appliance, documents, args.upsert_batch, mark=cpu_docs))
            _log(f"cuda: {json.dumps(result)}")
            if size == args.embed_batch_size:
                result["query"] = time_queries(appliance, queries, args.warmup)
                _log(f"cuda query: {json.dumps(result['query'])}")
                full_collection_dir = data_dir
                cuda_appliance = appliance  # kept for the vector agreement below
            else:
                appliance.close()
            runs.append(result)
            if not runs_on(facts, ACCELERATOR):
                _log(f"FAILED: asked for cuda, the encoder runs on {facts}")
                status = 1
        summary["cuda"] = runs

    _log(f"cpu: ingest {cpu_docs} docs, embed batch {args.embed_batch_size}")
    cpu_appliance = Appliance(settings_for(work / "data-cpu", model_dir, "cpu", args))
    cpu_result: dict[str, Any] = {"encoder": encoder_facts(cpu_appliance.encoder)}
    cpu_result.update(ingest(cpu_appliance, documents[:cpu_docs], args.upsert_batch))
    _log(f"cpu: {json.dumps(cpu_result)}")
    if cuda_appliance is not None:
        texts = [doc.text for doc in documents[:AGREEMENT_TEXTS]]
        summary["cuda_vs_cpu_vectors"] = agreement(
            cuda_appliance.encoder, cpu_appliance.encoder, texts
        )
        cuda_appliance.close()
    cpu_appliance.close()
    # The CPU encoder over the CUDA run's collection: the same documents, index and store as
    # CUDA's query timings, so only the device that embeds the query differs.
    query_appliance = Appliance(
        settings_for(full_collection_dir, model_dir, "cpu", args), encoder=cpu_appliance.encoder
    )
    cpu_result["query"] = time_queries(query_appliance, queries, args.warmup)
    query_appliance.close()
    _log(f"cpu query: {json.dumps(cpu_result['query'])}")
    summary["cpu"] = cpu_result

    if cuda and summary["cuda"]:
        same = next(r for r in summary["cuda"] if r["embed_batch_size"] == args.embed_batch_size)
        best = max(summary["cuda"], key=lambda r: r["docs_per_s"])
        summary["ratios"] = {
            # The same documents, the same batch sizes: only the device differs.
            "ingest_same_docs_cuda_over_cpu": round(
                same.get("first_docs_per_s", same["docs_per_s"]) / cpu_result["docs_per_s"], 2
            ),
            "ingest_best_cuda_whole_corpus_over_cpu": round(
                best["docs_per_s"] / cpu_result["docs_per_s"], 2
            ),
            "query_p50_cpu_over_cuda": round(
                cpu_result["query"]["p50_ms"] / same["query"]["p50_ms"], 2
            ),
        }
    elif not cuda and not args.allow_cpu_only:
        status = status or NO_CUDA_EXIT
    summary["verdict"] = (
        "ok" if status == 0 and cuda else ("no CUDA device" if not cuda else "failed")
    )
    if not args.keep_workdir and args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return summary, status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kit", type=Path, default=ROOT / ".devkit")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "gpu-ingest")
    parser.add_argument("--cpu-docs", type=int, default=1000, help="documents the CPU ingests")
    parser.add_argument("--limit-docs", type=int, default=0, help="0 = the whole corpus")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--upsert-batch", type=int, default=100, help="documents per upsert")
    parser.add_argument("--embed-batch-size", type=int, default=64, help="both devices")
    parser.add_argument(
        "--cuda-batch-sizes",
        type=lambda text: [int(part) for part in text.split(",") if part],
        default=[64, 256],
        help="CUDA ingests once per size; the one equal to --embed-batch-size is compared",
    )
    parser.add_argument("--cpu-threads", type=int, default=0, help="torch threads; 0 = all")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument(
        "--allow-cpu-only", action="store_true", help="exit 0 without CUDA (a dry run)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.embed_batch_size not in args.cuda_batch_sizes:
        args.cuda_batch_sizes.insert(0, args.embed_batch_size)
    started = time.perf_counter()
    summary, status = run(args)
    summary["wall_seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_ingest.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    _log(f"{summary['verdict']}; written to {args.out / 'gpu_ingest.json'} (exit {status})")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
