"""`appliance serve` as a real subprocess on a free loopback port, for tests that go over HTTP
the way a user's program does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from appliance.client import ApplianceClient, ApplianceUnavailable

# The shared test server (conftest's `live_server_url`): every request needs LIVE_KEY, and
# batches over LIVE_ASYNC_THRESHOLD documents run as background jobs.
LIVE_KEY = "live-server-test-admin-key-0123456789abcdef"
LIVE_ASYNC_THRESHOLD = 4


def _ready(client: ApplianceClient) -> bool:
    try:
        return client.ready().status == "ready"
    except ApplianceUnavailable:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_server(workdir: Path, admin_key: str | None = None, **settings: str) -> Iterator[str]:
    """Start a server over a fresh data dir in `workdir`; yield its base URL once ready.
    With `admin_key`, every request needs that key as a Bearer token; `settings` are more
    settings by name (`async_threshold="4"` is APPLIANCE_ASYNC_THRESHOLD=4)."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "APPLIANCE_PORT": str(port),
            "APPLIANCE_DATA_DIR": str(workdir / "data"),
            "APPLIANCE_LOAD_SAMPLE": "false",
            "APPLIANCE_CONFIG": str(workdir / "none.toml"),
        }
    )
    env.update({f"APPLIANCE_{name.upper()}": value for name, value in settings.items()})
    if admin_key is not None:
        key_file = workdir / "admin.key"
        key_file.write_text(admin_key)
        env["APPLIANCE_ADMIN_KEY_FILE"] = str(key_file)
    log_path = workdir / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        with ApplianceClient(url, api_key=admin_key) as client:
            deadline = time.monotonic() + 180
            while not _ready(client):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
