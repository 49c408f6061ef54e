"""A real `appliance serve` on a loopback port with a small corpus and three keys, and headless
Chromium (Debian's, driven by Playwright) on fresh profiles, for the console's browser tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import text

from appliance.store import keys as key_store
from appliance.store.database import Database
from tests.conftest import ANIMALS

CHROMIUM = os.environ.get("APPLIANCE_E2E_CHROMIUM", "/usr/bin/chromium")
# Seen to work here: no sandbox (root in a container), no GPU, nothing that calls out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Set to a folder (`make console-screenshots` sets docs/console) to keep a picture of each page.
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")

MORE = [
    (
        "markup",
        "<b>Bold</b> words and an <img src=/x onerror=alert(1)> tag in a note about markup.",
        {"kind": "note"},
    ),
    (
        "frog",
        "A frog croaks by the pond at night and catches insects with its tongue.",
        {"kind": "amphibian", "legs": 4},
    ),
    (
        "owl",
        "The owl hunts mice silently at night with its sharp talons.",
        {"kind": "bird", "legs": 2},
    ),
]
CORPUS = [{"id": i, "text": t, "metadata": m} for i, t, m in [*ANIMALS, *MORE]]


@dataclass
class Server:
    base: str
    data_dir: Path
    keys: dict[str, str]

    def request(
        self, path: str, body: Any = None, method: str | None = None, scope: str = "admin"
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if self.keys:  # an open server has none to send
            headers["Authorization"] = f"Bearer {self.keys[scope]}"
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers=headers
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def feedback(self) -> list[tuple[str, str, int]]:
        """(query_id, doc_id, relevance) rows the store recorded."""
        database = Database(self.data_dir / "appliance.sqlite3")
        try:
            with database.read() as session:
                rows = session.execute(text("SELECT query_id, doc_id, relevance FROM feedback"))
                return [(r[0], r[1], int(r[2])) for r in rows]
        finally:
            database.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/ready", timeout=5) as response:
            return bool(json.loads(response.read())["status"] == "ready")
    except (OSError, urllib.error.HTTPError, ValueError):
        return False


@contextmanager
def _serving(root: Path) -> Iterator[str]:
    """`appliance serve` on a free loopback port over root/data, until the block ends."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "APPLIANCE_HOST": "127.0.0.1",
            "APPLIANCE_PORT": str(port),
            "APPLIANCE_DATA_DIR": str(root / "data"),
            "APPLIANCE_LOAD_SAMPLE": "false",
            "APPLIANCE_CONFIG": str(root / "none.toml"),
        }
    )
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "serve"], env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not _ready(base):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "server.log").read_text()[-4000:])
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with the corpus and a read, a write and an admin key."""
    root = tmp_path_factory.mktemp("console")
    with _serving(root) as base:
        # Keys made beside the running server count at its next request.
        database = Database(root / "data" / "appliance.sqlite3")
        with database.write() as session:
            keys = {
                s: key_store.create_key(session, s, f"e2e {s}")[1]
                for s in ("read", "write", "admin")
            }
        database.close()
        running = Server(base=base, data_dir=root / "data", keys=keys)
        running.request("/collections/default/documents", {"documents": CORPUS}, method="PUT")
        yield running


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with no key at all (open, as it may be on loopback)."""
    root = tmp_path_factory.mktemp("console-open")
    with _serving(root) as base:
        running = Server(base=base, data_dir=root / "data", keys={})
        running.request("/collections/default/documents", {"documents": CORPUS}, method="PUT")
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        # A fresh temporary profile per launch; each test gets its own context (storage).
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@contextmanager
def _tab(browser: Any, base: str) -> Iterator[Any]:
    """A tab in a fresh context. At the end: every URL it asked for was the appliance's own,
    and no script error was thrown."""
    context = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    requested: list[str] = []
    errors: list[str] = []
    tab.on("request", lambda request: requested.append(request.url))
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert requested, "the page asked for nothing"
    foreign = [url for url in requested if not url.startswith(base + "/")]
    assert foreign == [], f"the console loaded URLs from another origin: {foreign}"
    assert errors == [], f"script errors: {errors}"


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    with _tab(browser, server.base) as tab:
        yield tab


@pytest.fixture
def open_page(browser: Any, open_server: Server) -> Iterator[Any]:
    with _tab(browser, open_server.base) as tab:
        yield tab


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)
