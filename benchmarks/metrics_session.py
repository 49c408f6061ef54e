"""A short ingest + search session through the HTTP API (Litestar test client), then the
operational metrics it left on `/metrics`: what the closing note of issue 6 shows.

    .venv/bin/python benchmarks/metrics_session.py
"""

from __future__ import annotations

import itertools
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from litestar.testing import TestClient  # noqa: E402

from appliance.api.app import create_app  # noqa: E402
from appliance.config import load_settings  # noqa: E402
from appliance.ingest.sample import SAMPLE_CORPUS  # noqa: E402
from appliance.ingest.sources import read_jsonl  # noqa: E402
from appliance.service import Appliance  # noqa: E402

SHOWN = re.compile(
    r"^(search_stage_seconds_(count|sum)|search_latency_seconds_(count|sum)|"
    r"result_cache_(hits|misses)_total|embedding_cache_(hits|misses)_total|"
    r"embedding_tokens_total|embedding_compute_seconds_total|embedding_cost_equivalent_usd_total|"
    r"search_feedback_relevance_(count|sum)|index_bytes|collection_documents|errors_total|"
    r"appliance_ready|documents_upserted_total)"
)


def main() -> None:
    settings = load_settings(
        Path("/nonexistent.toml"), data_dir=tempfile.mkdtemp(), load_sample=False
    )
    appliance = Appliance(settings)
    documents = [
        {"id": d.id, "text": d.text, "metadata": d.metadata}
        for d in itertools.islice(read_jsonl(SAMPLE_CORPUS), 200)
    ]
    with TestClient(create_app(settings, appliance)) as client:
        client.post("/collections", json={"name": "docs"})
        for start in range(0, len(documents), 100):
            batch = {"documents": documents[start : start + 100]}
            assert client.put("/collections/docs/documents", json=batch).status_code == 200
        queries = ["parse a JSON document", "read a file", "sort a list", "open a socket"]
        query_id = ""
        for query in queries * 3:  # each query 3 times: 1 miss, 2 result-cache hits
            answer = client.post("/collections/docs/search", json={"query": query}).json()
            query_id = answer["query_id"]
            top = answer["results"][0]["id"]
        client.post(
            "/collections/docs/search",
            json={"query": "read a file", "filter": {"kind": "function"}, "mode": "dense"},
        )
        client.post(
            "/collections/docs/feedback", json={"query_id": query_id, "doc_id": top, "relevance": 2}
        )
        client.post("/collections/docs/search", json={"query": "x", "filter": {"$bad": 1}})
        metrics = client.get("/metrics").text
    for line in metrics.splitlines():
        if SHOWN.match(line):
            print(line)


if __name__ == "__main__":
    main()
