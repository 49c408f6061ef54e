"""Concurrent search throughput of a real `appliance serve`, driven by wrk, against the
batched-embedding limit of every core measured in the same run.

Over the sample corpus (1,171 documents, rate limits off, result cache on) it measures fresh
hybrid and dense queries at 1, 8 and 32 connections; every request is a query not sent before
in the run, across all connections (SciFact and NFCorpus queries and variants of them). Before
the server starts, the same queries are embedded in-process in batches of 32 with every core,
each way the cores can be used (one stream with every thread, or a stream per core; one pass a
batch, or the server's length-sorted passes): the best of these is the limit. Then a knee:
more connections than the server's queue bound, where it answers 503 with Retry-After instead
of letting latency grow.

    .venv/bin/python benchmarks/concurrency.py [--backend openvino] [--seconds 20] [--baseline]

`--baseline` first runs the same points on a server without micro-batching
(APPLIANCE_QUERY_BATCH_WORKERS=0), for what batching buys. Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TEMPLATES = (
    "{q}",
    "what is known about {q}",
    "{q} evidence",
    "is it true that {q}",
    "{q} in humans",
    "studies on {q}",
    "{q} mechanism",
    "review: {q}",
    "{q} clinical trial",
    "does research show {q}",
    "{q} risk",
    "{q} meta-analysis",
)

# Per wrk thread: its slice of the query list (thread n takes start + n, + n + threads, ...),
# a JSON body per request, and counts of 200s and 503s for done() to sum.
WRK_SCRIPT = r"""
local queries = {}
for line in io.lines(os.getenv("QUERIES_FILE")) do queries[#queries + 1] = line end
local threads = {}
local counter = 0
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  start = tonumber(args[1]); stride = tonumber(args[2]); mode = args[3]
  served = 0; overloaded = 0; other = 0
end
function request()
  local index = start + id + counter * stride
  counter = counter + 1
  local query = queries[(index % #queries) + 1]
  if index >= #queries then query = query .. " (" .. math.floor(index / #queries) .. ")" end
  local body = '{"query":"' .. query .. '","mode":"' .. mode .. '","limit":10}'
  return wrk.format("POST", "/collections/default/search",
                    {["Content-Type"] = "application/json"}, body)
end
function response(status, headers, body)
  if status == 200 then served = served + 1
  elseif status == 503 then overloaded = overloaded + 1
  else other = other + 1 end
end
function done(summary, latency, requests)
  local ok, busy, bad = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("served"); busy = busy + thread:get("overloaded")
    bad = bad + thread:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%f,"ok":%d,"overloaded":%d,"other_status":%d,' ..
    '"socket_errors":%d,"p50_ms":%f,"p99_ms":%f}\n',
    summary.requests, summary.duration / 1e6, ok, busy, bad,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


@dataclass
class Point:
    label: str
    mode: str
    connections: int
    requests: int
    ok: int
    overloaded: int
    errors: int
    req_per_s: float
    p50_ms: float
    p99_ms: float
    # CPU the server process and the load generator (wrk) used, in cores, over the point: on a
    # box whose cores both serve and load, the two together show how near saturation it ran.
    server_cores: float = 0.0
    client_cores: float = 0.0
    # Query texts per embedding batch over the point (the server's /metrics).
    mean_batch: float = 0.0
    # CPU of the server's main thread (its event loop: HTTP, the Litestar stack and the
    # searches answered on the loop) per request served, in ms.
    loop_ms: float = 0.0


def fresh_queries(data: Path = DATA, seed: int = 7) -> list[str]:
    """Every SciFact and NFCorpus query under each template, shuffled, no two alike."""
    bases: list[str] = []
    for name in ("scifact", "nfcorpus"):
        with (data / name / "queries.jsonl").open() as handle:
            bases.extend(json.loads(line)["text"].strip().rstrip("?.") for line in handle)
    seen: set[str] = set()
    queries = []
    for template in TEMPLATES:
        for base in bases:
            query = template.format(q=base)
            if query not in seen:
                seen.add(query)
                queries.append(query)
    random.Random(seed).shuffle(queries)
    return queries


def embedding_limit(
    queries: list[str], backend: str, batch: int = 32, count: int = 2048
) -> dict[str, float]:
    """Queries per second the model embeds in batches of `batch` on every core, in this
    process, each way the cores can be used: one stream of batches with every core's threads,
    or one stream per core with one thread each (as the server's batch workers run), each
    with one forward pass a batch (the issue's definition) and with the passes the server
    makes (`query_pass_size`, longest first). The ratio is taken to the best of them."""
    from concurrent.futures import ThreadPoolExecutor

    from appliance.config import load_settings
    from appliance.embedding.encoder import Encoder
    from appliance.models.registry import ModelRegistry

    settings = load_settings(Path("/nonexistent.toml"))
    model = ModelRegistry().resolve(settings.model)
    cores = os.cpu_count() or 1
    sample = queries[-count:]  # the server never sees these: its slices start at 0
    batches = [sample[start : start + batch] for start in range(0, len(sample), batch)]
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as exports:
        for threads, streams in ((0, 1), (1, cores)):
            encoder = Encoder(
                model,
                device="cpu",
                batch_size=batch,
                threads=threads,
                backend=backend,
                export_dir=Path(exports),
            )
            encoder.encode(sample[:batch])  # warm-up
            for pass_size in sorted({batch, settings.query_pass_size}, reverse=True):

                def run(
                    share: list[list[str]], size: int = pass_size, enc: Encoder = encoder
                ) -> None:
                    for texts in share:
                        enc.encode(texts, batch_size=size)

                best = 0.0
                with ThreadPoolExecutor(streams) as pool:
                    for _ in range(2):
                        started = time.perf_counter()
                        shares = [batches[n::streams] for n in range(streams)]
                        list(pool.map(run, shares))
                        best = max(best, len(sample) / (time.perf_counter() - started))
                label = "all threads" if streams == 1 else f"{streams} streams of 1 thread"
                rates[f"{label}, passes of {pass_size}"] = best
    return rates


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


class Server:
    def __init__(self, data_dir: Path, backend: str, env_extra: dict[str, str]) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            {
                "APPLIANCE_DATA_DIR": str(data_dir),
                "APPLIANCE_PORT": str(self.port),
                "APPLIANCE_CONFIG": str(data_dir / "none.toml"),
                "APPLIANCE_EMBEDDING_BACKEND": backend,
                "APPLIANCE_LOAD_SAMPLE": "true",
                "APPLIANCE_WARM_TOP_QUERIES": "0",
                **{f"APPLIANCE_RATE_LIMIT_{s}": "0" for s in ("READ", "WRITE", "ANONYMOUS")},
                **env_extra,
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def wait_loaded(self, documents: int, timeout: float = 600) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise SystemExit("the server exited during start-up")
            try:
                if _get(f"{self.base}/collections/default")["documents"] >= documents:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("the sample corpus did not load in time")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def run_wrk(
    server: Server,
    script: Path,
    queries_file: Path,
    start: int,
    mode: str,
    connections: int,
    seconds: int,
) -> dict[str, Any]:
    threads = min(2, connections)
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        server.base,
        "--",
        str(start),
        str(threads),
        mode,
    ]
    output = subprocess.run(
        command,
        env=dict(os.environ, QUERIES_FILE=str(queries_file)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(row for row in output.splitlines() if row.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


def _process_cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU of a running process, every thread; or of one `thread` of it."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    """User + system CPU of this process's finished children (each wrk run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _batch_counts(server: Server) -> tuple[float, float]:
    """The server's query-embedding batches and the texts they held, so far."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{server.base}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    counts = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return (
        counts.get("query_embedding_batches_total", 0.0),
        counts.get("query_embedding_batched_texts_total", 0.0),
    )


def measure(
    label: str,
    server: Server,
    script: Path,
    queries_file: Path,
    cursor: list[int],
    mode: str,
    connections: int,
    seconds: int,
) -> Point:
    pid = server.process.pid
    server_before, client_before = _process_cpu_seconds(pid), _children_cpu_seconds()
    loop_before = _process_cpu_seconds(pid, thread=pid)  # the main thread's id is the pid
    batches_before, texts_before = _batch_counts(server)
    result = run_wrk(server, script, queries_file, cursor[0], mode, connections, seconds)
    batches_after, texts_after = _batch_counts(server)
    elapsed = result["seconds"]
    server_cores = (_process_cpu_seconds(pid) - server_before) / elapsed
    loop_seconds = _process_cpu_seconds(pid, thread=pid) - loop_before
    client_cores = (_children_cpu_seconds() - client_before) / elapsed
    # The next point starts past every query this one may have sent.
    cursor[0] += result["requests"] + 2 * connections
    return Point(
        label=label,
        mode=mode,
        connections=connections,
        requests=result["requests"],
        ok=result["ok"],
        overloaded=result["overloaded"],
        errors=result["other_status"] + result["socket_errors"],
        req_per_s=result["ok"] / result["seconds"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        server_cores=server_cores,
        client_cores=client_cores,
        mean_batch=(texts_after - texts_before) / max(1.0, batches_after - batches_before),
        loop_ms=loop_seconds * 1000 / max(1, result["ok"]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--modes", default="hybrid,dense")
    parser.add_argument("--knee", default="64,128,256", help="connections past the bound")
    parser.add_argument("--max-pending", type=int, default=48, help="the server's queue bound")
    parser.add_argument("--baseline", action="store_true", help="also run without batching")
    parser.add_argument("--data", type=Path, default=DATA, help="holds scifact/, nfcorpus/")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    connections = [int(c) for c in args.connections.split(",")]
    modes = args.modes.split(",")
    knee = [int(c) for c in args.knee.split(",") if c]

    queries = fresh_queries(args.data)
    rates = embedding_limit(queries, args.backend)
    limit = max(rates.values())
    ways = "; ".join(f"{way}: {rate:.1f}" for way, rate in rates.items())
    print(f"limit: {limit:.1f} queries/s ({args.backend}, batches of 32, every core; {ways})")
    servers = [("no batching", {"APPLIANCE_QUERY_BATCH_WORKERS": "0"})] if args.baseline else []
    servers.append(("batched", {"APPLIANCE_MAX_PENDING_QUERIES": str(args.max_pending)}))

    points: list[Point] = []
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        script = root / "fresh.lua"
        script.write_text(WRK_SCRIPT)
        queries_file = root / "queries.txt"
        queries_file.write_text("\n".join(json.dumps(q)[1:-1] for q in queries[:-2048]) + "\n")
        cursor = [0]
        for label, env in servers:
            server = Server(root / label.replace(" ", "-"), args.backend, env)
            try:
                seconds = server.wait_loaded(1171)
                print(f"[{label}] sample corpus loaded, server ready in {seconds:.1f} s")
                for mode in modes:
                    for count in connections:
                        point = measure(
                            label,
                            server,
                            script,
                            queries_file,
                            cursor,
                            mode,
                            count,
                            args.seconds,
                        )
                        points.append(point)
                        _print(point, limit)
                if label == "batched":
                    for count in knee:
                        point = measure(
                            "knee",
                            server,
                            script,
                            queries_file,
                            cursor,
                            "hybrid",
                            count,
                            max(5, args.seconds // 2),
                        )
                        points.append(point)
                        _print(point, limit)
            finally:
                server.stop()
    if args.json:
        print(
            json.dumps(
                {"limit": limit, "limit_by_pass": rates, "points": [p.__dict__ for p in points]},
                indent=2,
            )
        )


def _print(point: Point, limit: float) -> None:
    print(
        f"{point.label:12} {point.mode:7} c={point.connections:<4} "
        f"{point.req_per_s:7.1f} req/s  p50 {point.p50_ms:8.1f} ms  p99 {point.p99_ms:8.1f} ms  "
        f"p99/p50 {point.p99_ms / max(point.p50_ms, 1e-9):4.1f}  "
        f"ratio {point.req_per_s / limit:5.2f}  503s {point.overloaded}  errors {point.errors}  "
        f"cores: server {point.server_cores:.2f} wrk {point.client_cores:.2f}  "
        f"batch {point.mean_batch:.1f}  loop {point.loop_ms:.2f} ms/req",
        flush=True,
    )


if __name__ == "__main__":
    main()
