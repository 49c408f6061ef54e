"""Spine figures: ingest throughput and search latency through the HTTP API.

    .venv/bin/python benchmarks/spine_figures.py

Ingests the bundled sample corpus into a scratch data dir and reports docs/s beside raw
`SentenceTransformer.encode` on the same texts and batch size (the baseline, same process),
then search p50/p99 through Litestar's test client for fresh and cached queries.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from litestar.testing import TestClient

from appliance.api.app import create_app
from appliance.config import load_settings
from appliance.ingest.sample import SAMPLE_CORPUS
from appliance.ingest.sources import read_jsonl
from appliance.service import Appliance


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings(Path("/nonexistent.toml"), data_dir=scratch, load_sample=False)
        appliance = Appliance(settings)
        documents = list(read_jsonl(SAMPLE_CORPUS))
        texts = [doc.text for doc in documents]
        raw = appliance.encoder._st
        raw.encode(texts[:64], batch_size=settings.embed_batch_size)  # warm up

        started = time.perf_counter()
        raw.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
        raw_seconds = time.perf_counter() - started

        appliance.ensure_collection("default")
        started = time.perf_counter()
        for start in range(0, len(documents), 256):
            appliance.ingest.upsert("default", documents[start : start + 256])
        ingest_seconds = time.perf_counter() - started

        queries = [doc.id.replace(".", " ").replace("_", " ") for doc in documents[::6]][:150]
        fresh: list[float] = []
        cached: list[float] = []
        with TestClient(create_app(settings, appliance)) as client:
            for query in queries:
                for sink in (fresh, cached):
                    started = time.perf_counter()
                    response = client.post("/search", json={"query": query, "limit": 10})
                    sink.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
        report = {
            "documents": len(documents),
            "ingest_docs_per_s": round(len(documents) / ingest_seconds, 1),
            "raw_encode_docs_per_s": round(len(documents) / raw_seconds, 1),
            "ingest_vs_raw_encode": round(raw_seconds / ingest_seconds, 3),
            "search_p50_ms": round(statistics.median(fresh), 2),
            "search_p99_ms": round(percentile(fresh, 0.99), 2),
            "cached_query_p50_ms": round(statistics.median(cached), 2),
            "queries": len(queries),
        }
        appliance.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
