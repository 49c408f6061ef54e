"""`appliance serve` as a real process on loopback, as `make run` starts it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.ingest.pipeline import DocumentInput
from appliance.service import Appliance
from appliance.store import versions as version_store


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(url: str, payload: dict[str, Any] | None = None, method: str | None = None) -> Any:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_serve_answers_on_loopback_with_env_overrides(tmp_path: Path, event_loop: str) -> None:
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "APPLIANCE_EVENT_LOOP": event_loop,
            "APPLIANCE_PORT": str(port),
            "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
            "APPLIANCE_LOAD_SAMPLE": "false",
            "APPLIANCE_CONFIG": str(tmp_path / "none.toml"),
        }
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _request(f"{base}/ready")["status"] == "ready":
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
            time.sleep(0.2)
        upserted = _request(
            f"{base}/collections/default/documents",
            {"documents": [{"id": "a", "text": "the quick brown fox"}]},
            method="PUT",
        )
        assert upserted["upserted"] == 1
        assert _request(f"{base}/search", {"query": "a fast fox"})["results"][0]["id"] == "a"
    finally:
        server.terminate()
        server.wait(timeout=30)
    # SIGTERM saved the index snapshot.
    assert list((tmp_path / "data" / "indexes").glob("collection-*/manifest.json"))


def test_serve_runs_uvicorn_with_one_write_per_answer_on_the_configured_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from appliance.api.http_protocol import CoalescingHttpToolsProtocol
    from appliance.cli.serve import run_server
    from appliance.config import load_settings

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    settings = load_settings(
        tmp_path / "none.toml", data_dir=str(tmp_path / "data"), event_loop="uvloop"
    )
    run_server(settings)
    assert seen["http"] is CoalescingHttpToolsProtocol
    assert seen["loop"] == "uvloop"
    assert load_settings(tmp_path / "none.toml").event_loop == "asyncio"  # the default


def test_first_start_ingests_the_sample_corpus_with_sensible_hits(
    open_appliance: Callable[..., Appliance],
) -> None:
    appliance = open_appliance(load_sample=True)
    assert appliance.load_sample_if_empty() > 1000
    hits = appliance.search.search("default", "parse a JSON document into Python objects").results
    assert hits[0].id.startswith("json")
    hits = appliance.search.search("default", "create a temporary directory", limit=3).results
    assert any(hit.id.startswith("tempfile") for hit in hits)
    # Only on first start: a second call finds the store filled.
    assert appliance.load_sample_if_empty() == 0


def test_start_runs_the_serving_tasks_in_order_and_close_stops_them(
    open_appliance: Callable[..., Appliance],
) -> None:
    """`Appliance.start` is the one place a serving process's tasks start: a job a stopped
    process left queued runs, a reindex it left building is marked interrupted, the query log
    flushes, and the default collection exists; `close` stops the threads."""
    first = open_appliance(load_sample=False)
    first.ensure_collection("default")
    job = first.jobs.submit("default", [DocumentInput(id="a", text="a queued document")])
    with first.db.write() as session:
        version_store.record_version(
            session, first.collections.get("default").id, "other@x", version_store.BUILDING
        )
    first.close()

    appliance = open_appliance(load_sample=False)
    appliance.start()
    deadline = time.monotonic() + 30
    while appliance.jobs.get(job.id).state not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the queued job never ran"
        time.sleep(0.05)
    assert appliance.jobs.get(job.id).state == "succeeded"
    with appliance.db.read() as session:
        version = version_store.get_version(
            session, appliance.collections.get("default").id, "other@x"
        )
        assert version is not None and version.state == version_store.INTERRUPTED
    threads = [appliance.jobs._thread, appliance.query_log._thread]
    assert all(thread is not None and thread.is_alive() for thread in threads)
    appliance.close()
    assert not any(thread is not None and thread.is_alive() for thread in threads)
