"""The API's routes are a thin edge over the service: none imports the store, opens a database
session or takes a collection's lock. (The CLI gets the same scan once it is a package over
the service; today `appliance/cli.py` still reads keys and jobs from the store.)"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROUTES = sorted((Path(__file__).parents[1] / "appliance" / "api" / "routes").glob("*.py"))
FORBIDDEN_ATTRIBUTES = {"db", "index_lock", "write_lock", "read", "write"}


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("appliance.store"):
            found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found.extend(
                f"line {node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.startswith("appliance.store")
            )
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"line {node.lineno}: .{node.attr}")
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


@pytest.mark.parametrize("path", ROUTES, ids=lambda path: path.name)
def test_routes_never_touch_the_store_or_a_lock(path: Path) -> None:
    assert _offences(path) == []
