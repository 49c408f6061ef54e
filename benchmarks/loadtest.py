"""Bounded loopback load test of a real `appliance serve` process (under 60 s of load).

1. mixed: 32 concurrent clients, 90 % search / 10 % upsert; throughput, p50/p99, server errors;
2. search latency with 4 search clients while idle, then while a 10k-document ingest runs.

Only 127.0.0.1 is used. Prints one JSON object; exits 1 on any 5xx or connection error.
    .venv/bin/python benchmarks/loadtest.py [--clients 32] [--mixed-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORDS = " ".join(
    [
        "search index vector store document query model embed cosine nearest neighbour",
        "filter python json parse file socket thread process memory disk network cache",
        "error string number list dictionary class function module import time date zone",
    ]
).split()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _text(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _docs(rng: random.Random, prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}-{i}", "text": _text(rng), "metadata": {"n": i % 10}} for i in range(count)
    ]


class Recorder:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = {"search": [], "upsert": []}
        self.server_errors = 0
        self.connection_errors = 0
        self.client_errors = 0

    async def call(self, client: httpx.AsyncClient, kind: str, method: str, path: str, body: Any):
        started = time.perf_counter()
        try:
            response = await client.request(method, path, json=body)
        except httpx.HTTPError:
            self.connection_errors += 1
            return
        elapsed = time.perf_counter() - started
        if response.status_code >= 500:
            self.server_errors += 1
        elif response.status_code >= 400:
            self.client_errors += 1
        else:
            self.latency[kind].append(elapsed)


def _summary(samples: list[float], seconds: float | None = None) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    ms = np.asarray(samples) * 1000
    out: dict[str, Any] = {
        "n": len(samples),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }
    if seconds:
        out["per_s"] = round(len(samples) / seconds, 1)
    return out


async def _searchers(
    client: httpx.AsyncClient, recorder: Recorder, clients: int, seconds: float, seed: int
) -> None:
    deadline = time.monotonic() + seconds

    async def one(rng: random.Random) -> None:
        while time.monotonic() < deadline:
            body = {"query": _text(rng, 5), "limit": 10}
            await recorder.call(client, "search", "POST", "/collections/default/search", body)

    await asyncio.gather(*(one(random.Random(seed + i)) for i in range(clients)))


async def _mixed(client: httpx.AsyncClient, clients: int, seconds: float) -> dict[str, Any]:
    recorder = Recorder()
    deadline = time.monotonic() + seconds

    async def one(worker: int) -> None:
        rng = random.Random(worker)
        n = 0
        while time.monotonic() < deadline:
            n += 1
            if rng.random() < 0.9:
                body: Any = {"query": _text(rng, 5), "limit": 10}
                await recorder.call(client, "search", "POST", "/collections/default/search", body)
            else:
                body = {"documents": _docs(rng, f"m{worker}-{n}", 4)}
                await recorder.call(client, "upsert", "PUT", "/collections/default/documents", body)

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    elapsed = time.monotonic() - started
    done = len(recorder.latency["search"]) + len(recorder.latency["upsert"])
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests_per_s": round(done / elapsed, 1),
        "all": _summary(recorder.latency["search"] + recorder.latency["upsert"]),
        "search": _summary(recorder.latency["search"]),
        "upsert": _summary(recorder.latency["upsert"]),
        "server_errors": recorder.server_errors,
        "connection_errors": recorder.connection_errors,
        "client_errors": recorder.client_errors,
    }


async def _during_ingest(
    client: httpx.AsyncClient, clients: int, seconds: float
) -> tuple[dict[str, Any], dict[str, Any], Recorder]:
    idle = Recorder()
    await _searchers(client, idle, clients, seconds, seed=1000)
    busy = Recorder()
    rng = random.Random(7)
    ingested = 0

    async def ingest() -> None:
        nonlocal ingested
        for batch in range(20):  # 10,000 documents in batches of 500
            body = {"documents": _docs(rng, f"bulk{batch}", 500)}
            await busy.call(client, "upsert", "PUT", "/collections/default/documents", body)
            ingested += 500

    writer = asyncio.create_task(ingest())
    await asyncio.sleep(1.0)  # let the ingest get going
    await _searchers(client, busy, clients, seconds, seed=2000)
    writer.cancel()
    idle_summary = _summary(idle.latency["search"], seconds)
    busy_summary = _summary(busy.latency["search"], seconds)
    busy_summary["ingested_while_measuring"] = ingested
    return idle_summary, busy_summary, busy


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    port = _free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="loadtest-")) / "data"
    env = {
        **os.environ,
        "APPLIANCE_LOAD_SAMPLE": "false",
        "APPLIANCE_CONFIG": str(data_dir.parent / "none.toml"),
        "APPLIANCE_RATE_LIMIT_ANONYMOUS": "0",
        "APPLIANCE_LOG_LEVEL": "WARNING",
    }
    log = (data_dir.parent / "server.log").open("wb")
    command = [sys.executable, "-m", "appliance.cli", "serve", "--port", str(port)]
    command += ["--data-dir", str(data_dir)]
    server = subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=args.clients * 2, max_keepalive_connections=args.clients)
    try:
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            deadline = time.monotonic() + 240
            while True:
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not become ready")
                await asyncio.sleep(0.2)
            rng = random.Random(1)
            for batch in range(args.seed_docs // 250):
                body = {"documents": _docs(rng, f"seed{batch}", 250)}
                response = await client.put("/collections/default/documents", json=body)
                response.raise_for_status()
            mixed = await _mixed(client, args.clients, args.mixed_seconds)
            idle, busy, busy_recorder = await _during_ingest(
                client, args.search_clients, args.ingest_seconds
            )
    finally:
        server.kill()
        server.wait()
        log.close()
    errors = mixed["server_errors"] + mixed["connection_errors"] + busy_recorder.server_errors
    return {
        "device": "cpu",
        "seed_documents": args.seed_docs,
        "mixed_90_search_10_upsert": mixed,
        "search_while_idle": {"clients": args.search_clients, **idle},
        "search_during_10k_ingest": {"clients": args.search_clients, **busy},
        "server_errors_total": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--mixed-seconds", type=float, default=20)
    parser.add_argument("--search-clients", type=int, default=4)
    parser.add_argument("--ingest-seconds", type=float, default=12)
    parser.add_argument("--seed-docs", type=int, default=500)
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    print(json.dumps(report, indent=2))
    if report["server_errors_total"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
