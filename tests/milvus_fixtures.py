"""A real Milvus protocol on loopback for the milvus tests: milvus-lite's gRPC server
(`python -m milvus_lite server`) in its own process on a free port, as a Standalone would run.
Import the fixtures into a test module; each test gets its own namespace on the one server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.index.base import IndexServer
from appliance.index.milvus_index import forget_clients

pytest.importorskip("pymilvus", reason="the [milvus] extra (pymilvus, milvus-lite) is needed")
pytest.importorskip("milvus_lite", reason="the [milvus] extra (pymilvus, milvus-lite) is needed")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"milvus-lite server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"milvus-lite server did not listen on port {port} in {timeout:.0f} s")


@pytest.fixture(scope="session")
def milvus_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`http://127.0.0.1:<port>` of a milvus-lite server process, stopped at the end."""
    port = _free_port()
    data_dir = Path(tmp_path_factory.mktemp("milvus-server"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "milvus_lite",
            "server",
            "--data-dir",
            str(data_dir / "data"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        forget_clients()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def milvus_server(milvus_uri: str) -> IndexServer:
    """The server, with a namespace of this test's own."""
    return IndexServer(uri=milvus_uri, namespace=f"t{uuid.uuid4().hex[:10]}")
