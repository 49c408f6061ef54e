"""The API's routes and the CLI are thin edges over the service: none imports the store, opens
a database session or takes a lock (a collection's, the data dir's, or a threading one)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APPLIANCE = Path(__file__).parents[1] / "appliance"
ROUTES = sorted((APPLIANCE / "api" / "routes").glob("*.py"))
CLI = sorted((APPLIANCE / "cli").glob("*.py"))
FORBIDDEN_ATTRIBUTES = {"db", "index_lock", "write_lock", "read", "write", "_lock"}
# Modules whose import means a lock taken, or a store reached, past the service layer.
FORBIDDEN_MODULES = ("appliance.store", "appliance.datadir_lock", "threading", "fcntl")
FORBIDDEN_NAMES = {
    "Lock",
    "RLock",
    "Semaphore",
    "BoundedSemaphore",
    "Condition",
    "hold_data_dir",
    "DataDirLock",
    "Database",
    "index_lock",
    "write_lock",
}


def _forbidden_module(name: str) -> bool:
    return any(name == module or name.startswith(module + ".") for module in FORBIDDEN_MODULES)


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and _forbidden_module(node.module or ""):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom):
            found.extend(
                f"line {node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name in FORBIDDEN_NAMES
            )
        elif isinstance(node, ast.Import):
            found.extend(
                f"line {node.lineno}: import {alias.name}"
                for alias in node.names
                if _forbidden_module(alias.name)
            )
        elif isinstance(node, ast.Attribute) and (
            node.attr in FORBIDDEN_ATTRIBUTES or node.attr in FORBIDDEN_NAMES
        ):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"line {node.lineno}: {node.id}")
    return found


def test_the_scan_finds_what_it_forbids(tmp_path: Path) -> None:
    sample = tmp_path / "route.py"
    sample.write_text(
        "from appliance.store import documents\n"
        "import appliance.store.keys\n"
        "def f(appliance, live):\n"
        "    with appliance.db.read() as s, live.index_lock:\n"
        "        pass\n"
    )
    assert len(_offences(sample)) == 5


def test_the_scan_finds_a_lock_taken_in_a_cli_module(tmp_path: Path) -> None:
    sample = tmp_path / "verb.py"
    sample.write_text(
        "import threading\n"
        "from threading import Lock\n"
        "from appliance.datadir_lock import hold_data_dir\n"
        "from appliance.store.database import Database\n"
        "guard = threading.RLock()\n"
        "def f(settings, live):\n"
        "    with live.write_lock, hold_data_dir(settings.data_path, 'x'):\n"
        "        Database(settings.database_path)\n"
    )
    offences = _offences(sample)
    for expected in (
        "line 1: import threading",
        "line 2: from threading",
        "line 3: from appliance.datadir_lock",
        "line 4: from appliance.store.database",
        "line 5: .RLock",
        "line 7: .write_lock",
        "line 7: hold_data_dir",
        "line 8: Database",
    ):
        assert any(offence.startswith(expected) for offence in offences), (expected, offences)


def test_the_cli_is_a_package_of_verb_modules() -> None:
    names = {path.stem for path in CLI}
    assert not (APPLIANCE / "cli.py").exists()
    assert {"__init__", "__main__", "base", "collections", "search", "keys", "jobs"} <= names


@pytest.mark.parametrize("path", ROUTES, ids=lambda path: f"routes/{path.name}")
def test_routes_never_touch_the_store_or_a_lock(path: Path) -> None:
    assert _offences(path) == []


@pytest.mark.parametrize("path", CLI, ids=lambda path: f"cli/{path.name}")
def test_cli_modules_never_touch_the_store_or_a_lock(path: Path) -> None:
    assert _offences(path) == []


def test_the_cli_speaks_http_only_through_the_client() -> None:
    """Remote verbs use `appliance.client` (httpx); no hand-written HTTP in the CLI."""
    for path in CLI:
        text = path.read_text()
        for needle in ("urllib.request", "http.client", "import httpx", "import requests"):
            assert needle not in text, f"{path.name}: {needle}"
