"""TLS served by `appliance serve` itself: uvicorn's certificate options passed through."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import main
from appliance.config import load_settings
from appliance.errors import InvalidConfig


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_serve_speaks_https_with_the_given_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    env = dict(os.environ, APPLIANCE_LOAD_SAMPLE="false", APPLIANCE_CONFIG=str(tmp_path / "x"))
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "appliance.cli", "serve", "--port", str(port)),
            *("--data-dir", str(tmp_path / "data"), "--ssl-certfile", str(cert)),
            *("--ssl-keyfile", str(key)),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{port}/health", context=trusted, timeout=5
                ) as answer:
                    assert json.loads(answer.read())["status"] == "ok"
                    break
            except (ConnectionError, urllib.error.URLError) as exc:
                if isinstance(getattr(exc, "reason", None), ssl.SSLError):
                    raise
            assert time.monotonic() < deadline and server.poll() is None, "no https server"
            time.sleep(0.2)
        # Plain http on the same port is not served.
        with pytest.raises((ConnectionError, urllib.error.URLError, OSError)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    assert f"serving on https://127.0.0.1:{port}" in output


def test_tls_needs_both_the_certificate_and_its_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="both ssl_certfile and ssl_keyfile"):
        load_settings(tmp_path / "none.toml", ssl_certfile="/etc/cert.pem")
    result = CliRunner().invoke(
        main, ["serve", "--ssl-keyfile", "k.pem", "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 2 and "both ssl_certfile and ssl_keyfile" in result.stderr
