"""End-to-end search through a real server: `appliance serve` (uvicorn) on loopback, driven by
a keep-alive HTTP client, against its parts measured raw in the same run: query embedding
(`SentenceTransformer.encode`, the server's torch thread setting) + ANN (raw hnswlib on the
same stored vectors) + an empty Litestar route served by uvicorn the same way.

Targets (issue 12): search p50 <= 1.15x that baseline; a cached query <= 1.0 ms p50 through HTTP.
The cached query and the empty route are timed through two clients: httpx, and the standard
library's `http.client` on one keep-alive connection. httpx spends 0.3-0.5 ms of its own on
each request on this box; `http.client` is close to what wrk, a C client, sees.
The dense row does the baseline's work; the hybrid row (the default mode) adds BM25 + fusion.
A second baseline embeds with the appliance's own encoder (on torch: a traced graph with
prepacked linear layers, faster than raw sentence-transformers), so its pair shows only what
serving adds.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.config import load_settings
from appliance.embedding.encoder import Encoder
from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from benchmarks.http_baseline import fresh_queries, raw_search

DOCUMENTS = 300
ROUNDS = 60
TARGET = 1.15
CACHED_BUDGET_S = 0.001

EMPTY_APP = textwrap.dedent(
    """
    import sys
    from typing import Any
    import uvicorn
    from litestar import Litestar, post
    from litestar.params import JSONBody

    @post("/empty", status_code=200, sync_to_thread=False)
    def empty(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
        return {}

    uvicorn.run(Litestar(route_handlers=[empty]), host="127.0.0.1", port=int(sys.argv[1]),
                log_level="warning")
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


@pytest.fixture(scope="module")
def servers(
    encoder: Encoder, sample_documents: list[DocumentInput], tmp_path_factory: Any
) -> Iterator[tuple[httpx.Client, httpx.Client, Appliance]]:
    data_dir = tmp_path_factory.mktemp("uvicorn")
    settings = load_settings(Path("/nonexistent.toml"), data_dir=str(data_dir), load_sample=False)
    writer = Appliance(settings, encoder=encoder)
    writer.ensure_collection(settings.default_collection)
    for start in range(0, DOCUMENTS, 100):
        writer.ingest.upsert(settings.default_collection, sample_documents[start : start + 100])
    writer.close()
    port, empty_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "APPLIANCE_LOAD_SAMPLE": "false",
        "APPLIANCE_LOG_LEVEL": "WARNING",
        "APPLIANCE_WARM_TOP_QUERIES": "0",
        # The baseline embeds with raw sentence-transformers on torch: so does the server (the
        # default, auto, would embed with OpenVINO and compare two different backends).
        "APPLIANCE_EMBEDDING_BACKEND": "torch",
    }
    command = [sys.executable, "-m", "appliance.cli", "serve", "--port", str(port)]
    server = subprocess.Popen([*command, "--data-dir", str(data_dir)], env=env)
    empty = subprocess.Popen([sys.executable, "-c", EMPTY_APP, str(empty_port)], env=env)
    _wait_for(f"http://127.0.0.1:{port}/ready", server)
    reader = Appliance(settings, encoder=encoder)  # the same stored vectors, for raw ANN
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        httpx.Client(base_url=f"http://127.0.0.1:{empty_port}", timeout=30) as empty_client,
    ):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the empty app is up once it accepts a POST
            try:
                empty_client.post("/empty", json={})
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield client, empty_client, reader
    for process in (server, empty):
        process.terminate()
        process.wait(timeout=60)
    reader.db.close()


OWN_EMBEDDING_PAIR = "uvicorn search p50, dense vs the same embedding"


@pytest.mark.parametrize("role", ["baseline", "own-embedding baseline", "dense", "hybrid"])
def test_uvicorn_search_fresh_query(
    benchmark: Any,
    report: Any,
    servers: tuple[httpx.Client, httpx.Client, Appliance],
    sample_documents: list[DocumentInput],
    role: str,
) -> None:
    client, empty, reader = servers
    benchmark.group = "uvicorn search, fresh query"
    if role.endswith("baseline"):
        run = raw_search(reader, empty, own_embedding=role == "own-embedding baseline")
    else:
        path = f"/collections/{reader.settings.default_collection}/search"

        def run(query: str) -> None:
            body = {"query": query, "limit": 10, "mode": role}
            assert client.post(path, json=body).status_code == 200

    benchmark.pedantic(
        run,
        # A one-word prefix per role keeps the roles' queries apart and of the same length.
        setup=fresh_queries(sample_documents, "own" if role.startswith("own") else role),
        rounds=ROUNDS,
        warmup_rounds=5,
    )
    if role == "baseline":
        for name in ("uvicorn search p50, dense", "uvicorn search p50, hybrid"):
            report.pair(benchmark, name, "baseline", kind="latency", target=TARGET)
    elif role == "own-embedding baseline":
        report.pair(benchmark, OWN_EMBEDDING_PAIR, "baseline", kind="latency", target=TARGET)
    else:
        if role == "dense":
            report.pair(benchmark, OWN_EMBEDDING_PAIR, "appliance", kind="latency", target=TARGET)
        report.pair(
            benchmark, f"uvicorn search p50, {role}", "appliance", kind="latency", target=TARGET
        )


class LeanClient:
    """One keep-alive HTTP/1.1 connection from the standard library; POSTs JSON, reads the
    whole answer, returns its status."""

    def __init__(self, client: httpx.Client) -> None:
        url = client.base_url
        self.connection = http.client.HTTPConnection(str(url.host), url.port, timeout=30)

    def post(self, path: str, json_body: object) -> int:
        body = json.dumps(json_body)
        self.connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        response.read()
        return response.status


CACHED_ROLES = [
    (client, role)
    for client in ("httpx", "http.client")
    for role in ("empty route", "cached query")
]


@pytest.mark.parametrize(("client_name", "role"), CACHED_ROLES)
def test_uvicorn_cached_query(
    benchmark: Any,
    report: Any,
    servers: tuple[httpx.Client, httpx.Client, Appliance],
    client_name: str,
    role: str,
) -> None:
    client, empty, _ = servers
    body = {"query": "parse a JSON document", "limit": 10}
    benchmark.group = f"uvicorn, cached query ({client_name})"
    suffix = "" if client_name == "httpx" else f", {client_name}"
    cached = role == "cached query"
    server, path = (client, "/search") if cached else (empty, "/empty")
    lean = LeanClient(server) if client_name == "http.client" else None

    def run() -> None:
        status = lean.post(path, body) if lean else server.post(path, json=body).status_code
        assert status == 200

    benchmark.pedantic(run, rounds=ROUNDS * 3, warmup_rounds=5)
    if cached:
        report.absolute(
            benchmark, f"uvicorn search p50 (cached query{suffix})", budget_s=CACHED_BUDGET_S
        )
    side = "appliance" if cached else "baseline"
    pair = f"uvicorn cached query vs empty route{suffix}"
    report.pair(benchmark, pair, side, kind="latency", target=None)
