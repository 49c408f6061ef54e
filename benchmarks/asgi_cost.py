"""The API's own cost per request, in one process and without sockets: a cached search through
the whole app (request id, metrics, key check, rate limit, guards, strict body, the result
cache, the answer's encoding) against an empty Litestar route, both called as ASGI apps.

The cached search is the API's cheapest real answer: what it costs above the empty route is
what the middleware and the handler add to every request. Rate limits stay on (the anonymous
tier's limit is raised so that the run never reaches it). Prints the mean per request of the
best and the median batch, and their ratio to the empty route.

    .venv/bin/python benchmarks/asgi_cost.py [--batches 9] [--batch 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: the appliance package is the repo's
    sys.path.insert(0, str(REPO))

from litestar import Litestar, post  # noqa: E402
from litestar.params import JSONBody  # noqa: E402

from appliance.api.app import create_app  # noqa: E402
from appliance.config import load_settings  # noqa: E402

BODY = b'{"query": "parse a json document", "limit": 10}'


@post("/empty", status_code=200, sync_to_thread=False)
def empty(data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    return {}


async def call(app: Any, method: str, path: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
        ],
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def per_request(app: Any, path: str, batches: int, batch: int) -> list[float]:
    for _ in range(batch // 4):  # warm-up
        await call(app, "POST", path)
    means = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(batch):
            await call(app, "POST", path)
        means.append((time.perf_counter() - started) / batch * 1e6)
    return means


async def measure(app: Any, batches: int, batch: int) -> None:
    messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    started = asyncio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    await messages.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app(
            {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
            messages.get,
            lifespan_send,
        )
    )
    await started.wait()
    deadline = time.monotonic() + 300
    while (await call(app, "GET", "/ready"))[0] != 200:  # the sample corpus is loading
        if time.monotonic() > deadline:
            raise TimeoutError("the appliance was not ready in 300 s")
        await asyncio.sleep(0.5)
    status, body = await call(app, "POST", "/search")
    if status != 200 or b'"results"' not in body:
        raise RuntimeError(f"the search answered {status}: {body[:200]!r}")
    cached = await per_request(app, "/search", batches, batch)
    baseline = await per_request(Litestar(route_handlers=[empty]), "/empty", batches, batch)
    await messages.put({"type": "lifespan.shutdown"})
    await lifespan
    for label, means in (("empty route", baseline), ("cached search", cached)):
        print(
            f"{label:14} per request: best batch {min(means):6.1f} us, "
            f"median {statistics.median(means):6.1f} us ({batches} batches of {batch})"
        )
    print(
        f"cached search / empty route: best {min(cached) / min(baseline):.2f}x, "
        f"median {statistics.median(cached) / statistics.median(baseline):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="openvino")
    parser.add_argument("--batches", type=int, default=9, help="timed batches per route")
    parser.add_argument("--batch", type=int, default=1000, help="requests per batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings(
            Path(data_dir) / "none.toml",
            data_dir=data_dir,
            embedding_backend=args.backend,
            warm_top_queries=0,
            log_level="WARNING",
            rate_limit_anonymous=10**9,
        )
        asyncio.run(measure(create_app(settings), args.batches, args.batch))


if __name__ == "__main__":
    main()
