"""A reindex switch on a real server with searches running throughout, then a rollback.

Starts `appliance serve` (uvicorn, loopback) on a fresh data dir with the bundled sample corpus
(1,171 documents), registers a second embedding model in a registry of its own (by default a
small random-weight model built locally: the point is the mechanics, not its quality; pass
--model NAME --registry FILE for a real one), runs CLIENTS search loops against the default
collection, and meanwhile `POST /collections/default/reindex`. It reports searches, errors,
latency before / during / after, and stale answers: searches that started after the client saw
the switch but were answered by the old model (each answer names its `model_id`). Then it
switches back to the original model and reports how long the rollback took.

    .venv/bin/python benchmarks/reindex_live.py [--clients 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.models.registry import DEFAULT_REGISTRY_FILE, ModelRegistry  # noqa: E402

QUERIES = [
    "parse a JSON document",
    "read a file line by line",
    "sort a list in place",
    "open a network socket",
    "format a date as a string",
    "compress data with gzip",
    "run a subprocess and capture output",
    "match a regular expression",
]


@dataclass
class Sample:
    started: float
    ms: float
    model_id: str


@dataclass
class Observed:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _search_loop(base: str, worker: int, stop: threading.Event, observed: Observed) -> None:
    n = 0
    with httpx.Client(base_url=base, timeout=60) as client:
        while not stop.is_set():
            # A fresh text each time (a counter), so every search embeds and retrieves.
            query = f"{QUERIES[n % len(QUERIES)]} {worker}-{n}"
            n += 1
            started = time.monotonic()
            try:
                response = client.post(
                    "/collections/default/search", json={"query": query, "limit": 10}
                )
            except httpx.HTTPError as exc:
                with observed.lock:
                    observed.errors.append(f"transport: {exc}")
                continue
            ms = (time.monotonic() - started) * 1000
            with observed.lock:
                if response.status_code != 200:
                    observed.errors.append(f"{response.status_code}: {response.text[:200]}")
                else:
                    observed.samples.append(Sample(started, ms, response.json()["model_id"]))


def _wait_ready(client: httpx.Client, process: subprocess.Popen[bytes], documents: int) -> None:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if client.get("/ready").status_code == 200:
                info = client.get("/collections/default").json()
                if info["documents"] >= documents:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("server did not become ready with the sample corpus")


def _switch(client: httpx.Client, model: str) -> tuple[float, float, str]:
    """Start a reindex; returns (started, switched, model id) in monotonic seconds."""
    started = time.monotonic()
    response = client.post("/collections/default/reindex", json={"model": model})
    if response.status_code != 202:
        raise SystemExit(f"reindex refused: {response.status_code} {response.text}")
    target = response.json()["model_id"]
    while True:
        versions = client.get("/collections/default/versions").json()["versions"]
        state = {v["model_id"]: v for v in versions}[target]
        if state["state"] == "failed":
            raise SystemExit(f"reindex failed: {state['detail']}")
        if state["active"]:
            return started, time.monotonic(), target
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--model", help="A registered model to switch to (with --registry).")
    parser.add_argument("--registry", type=Path, help="Registry file holding --model.")
    parser.add_argument("--settle", type=float, default=3.0, help="Seconds before and after.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="reindex-live-"))
    registry_file = work / "registry.json"
    model = args.model
    if model and args.registry:
        shutil.copy(args.registry, registry_file)
    else:
        from tests.tiny_models import build_tiny_model

        shutil.copy(DEFAULT_REGISTRY_FILE, registry_file)
        model = "tiny-random-64"
        tiny = build_tiny_model(work / "tiny-model", dimension=64)
        ModelRegistry(registry_file).import_model(tiny, model)

    port = _free_port()
    env = {
        **os.environ,
        "APPLIANCE_MODEL_REGISTRY": str(registry_file),
        "APPLIANCE_LOG_LEVEL": "WARNING",
        "APPLIANCE_RESULT_CACHE_SIZE": "0",
    }
    command = [sys.executable, "-m", "appliance.cli", "serve", "--port", str(port)]
    server = subprocess.Popen([*command, "--data-dir", str(work / "data")], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as admin:
            _wait_ready(admin, server, documents=1171)
            original = admin.get("/collections/default").json()["model_id"]
            observed = Observed()
            stop = threading.Event()
            workers = [
                threading.Thread(target=_search_loop, args=(base, i, stop, observed))
                for i in range(args.clients)
            ]
            for worker in workers:
                worker.start()
            time.sleep(args.settle)
            began, switched, target = _switch(admin, model)
            time.sleep(args.settle)
            back_began, back_switched, _ = _switch(admin, original.rpartition("@")[0])
            time.sleep(args.settle)
            stop.set()
            for worker in workers:
                worker.join()
    finally:
        server.terminate()
        server.wait(timeout=120)

    def window(low: float, high: float) -> list[Sample]:
        return [s for s in observed.samples if low <= s.started < high]

    before = window(0, began)
    during = window(began, switched)
    after = window(switched, back_began)
    # Started after the client saw the switch, yet answered by the old model: stale.
    stale = [s for s in after if s.model_id != target]
    stale += [s for s in observed.samples if s.started >= back_switched and s.model_id != original]
    report: dict[str, Any] = {
        "clients": args.clients,
        "documents": 1171,
        "from_model": original,
        "to_model": target,
        "searches": len(observed.samples),
        "errors": len(observed.errors),
        "error_samples": observed.errors[:5],
        "stale_answers": len(stale),
        "reindex_seconds": round(switched - began, 2),
        "rollback_seconds": round(back_switched - back_began, 2),
        "searches_during_reindex": len(during),
        "answered_by_old_model_during_reindex": sum(s.model_id == original for s in during),
    }
    for name, samples in (("before", before), ("during", during), ("after", after)):
        ms = [s.ms for s in samples]
        report[f"p50_ms_{name}"] = round(_percentile(ms, 0.5), 1)
        report[f"p99_ms_{name}"] = round(_percentile(ms, 0.99), 1)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>38}: {value}")
    shutil.rmtree(work, ignore_errors=True)
    if observed.errors or stale:
        sys.exit(1)


if __name__ == "__main__":
    main()
