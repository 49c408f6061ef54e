"""`appliance serve` as a child process on a loopback port, and a tiny JSON client for it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def request(
    url: str, payload: Any = None, method: str = "GET", timeout: float = 60
) -> tuple[int, Any]:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


class Server:
    def __init__(self, data_dir: Path, log: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.update(
            {
                "APPLIANCE_LOAD_SAMPLE": "false",
                "APPLIANCE_CONFIG": str(data_dir.parent / "none.toml"),
                "APPLIANCE_RATE_LIMIT_ANONYMOUS": "0",
                "APPLIANCE_LOG_LEVEL": "WARNING",
                **env,
            }
        )
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "appliance.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                ],
                env=self.env,
                cwd=REPO,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None and self.process.poll() is None, (
                f"server exited; log: {self.log.read_text()[-3000:]}"
            )
            try:
                status, _ = request(f"{self.base}/ready", timeout=5)
                if status == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=60)

    def terminate(self, timeout: float = 120) -> int:
        assert self.process is not None
        self.process.terminate()
        return self.process.wait(timeout=timeout)


def verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "verify", "--data-dir", str(data_dir)],
        cwd=REPO,
        env={**os.environ, "APPLIANCE_CONFIG": str(data_dir.parent / "none.toml")},
        capture_output=True,
        text=True,
        timeout=300,
    )
